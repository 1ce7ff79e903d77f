// The Qwen3-VL vision tower against tools/reference/qwen3vl_vision_numpy.py, an independent numpy model of
// transformers' Qwen3VLVisionModel (tests/golden/models/qwen3vl_vision_numpy{,_expected}): the 2D RoPE ids of every
// row (merge-block order), the position table resampled and reordered, and the merged and DeepStack outputs of whole
// encodes for wide, tall, two-frame and minimal grids, within 1e-4 by max|a − b| / max|b|. Around it: the MLX
// channels-last Conv3d layout gives the same features, and broken configs, snapshots and inputs fail naming the field,
// tensor or shape.
#include "model/families/qwen3vl_vision.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "core/float_formats.h"
#include "model_test_util.h"
#include "weights/quant/quantize.h"
#include "weights/safetensors.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

constexpr double kTolerance = 1e-4;
constexpr double kPositionTolerance = 1e-5;

std::filesystem::path snapshot_dir() {
  return testing::golden_dir() / "qwen3vl_vision_numpy";
}

std::filesystem::path expected_dir() {
  return testing::golden_dir() / "qwen3vl_vision_numpy_expected";
}

json read_json(const std::filesystem::path& path) {
  return json::parse(std::ifstream(path));
}

// max|a − b| / max|b| over the whole tensor.
double relative_error(const Tensor& actual, const std::vector<float>& expected) {
  EXPECT_EQ(actual.elements(), static_cast<int64_t>(expected.size()));
  if (actual.elements() != static_cast<int64_t>(expected.size())) return 1e9;
  return testing::row_relative_error(actual.data_as<float>(), expected.data(), actual.elements());
}

ImagePixels case_pixels(const json& c) {
  const std::vector<float> values = testing::read_f32_file(expected_dir() / c["pixels"].get<std::string>());
  const auto grid = c["grid_thw"].get<std::vector<int64_t>>();
  const int64_t rows = grid[0] * grid[1] * grid[2];
  ImagePixels image;
  image.pixel_values = Tensor::zeros(DType::kF32, {rows, static_cast<int64_t>(values.size()) / rows});
  std::copy(values.begin(), values.end(), image.pixel_values.data_as<float>());
  std::copy(grid.begin(), grid.end(), image.grid_thw);
  image.soft_tokens = c["soft_tokens"].get<int64_t>();
  return image;
}

struct Loaded {
  explicit Loaded(const std::filesystem::path& dir)
      : snapshot(weights::Snapshot::open(dir)), loader(snapshot), tower(snapshot, loader, backend) {}
  weights::Snapshot snapshot;
  WeightLoader loader;
  backend::cpu::CpuBackend backend;
  Qwen3VLVisionTower tower;
};

void expect_matches_reference(Qwen3VLVisionTower& tower, const json& cases) {
  for (const json& c : cases["cases"]) {
    SCOPED_TRACE(c["grid_thw"].dump());
    const Qwen3VLImageFeatures features = tower.encode(case_pixels(c));
    const int64_t tokens = c["soft_tokens"].get<int64_t>();
    EXPECT_EQ(features.embeddings.shape(), (Shape{tokens, cases["out_hidden_size"].get<int64_t>()}));
    EXPECT_LT(relative_error(features.embeddings,
                             testing::read_f32_file(expected_dir() / c["embeddings"].get<std::string>())),
              kTolerance);
    ASSERT_EQ(features.deepstack.size(), c["deepstack"].size());
    for (size_t j = 0; j < features.deepstack.size(); ++j) {
      SCOPED_TRACE("deepstack " + std::to_string(j));
      EXPECT_EQ(features.deepstack[j].shape(), features.embeddings.shape());
      EXPECT_LT(relative_error(features.deepstack[j],
                               testing::read_f32_file(expected_dir() / c["deepstack"][j].get<std::string>())),
                kTolerance);
    }
  }
}

TEST(Qwen3VLVision, RopeIdsFollowTheMergeBlocks) {
  const json cases = read_json(expected_dir() / "cases.json");
  for (const json& c : cases["cases"]) {
    const auto grid = c["grid_thw"].get<std::vector<int64_t>>();
    const std::vector<int32_t> positions = qwen3vl_patch_positions(grid[0], grid[1], grid[2], 2);
    const auto ids = c["rope_ids"].get<std::vector<std::array<int32_t, 2>>>();
    ASSERT_EQ(positions.size(), 2 * ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(positions[i], ids[i][0]) << "row of " << i;
      EXPECT_EQ(positions[ids.size() + i], ids[i][1]) << "column of " << i;
    }
  }
  // The first merge block of a 4×6 grid: (0,0) (0,1) (1,0) (1,1), then the block to its right.
  const std::vector<int32_t> p = qwen3vl_patch_positions(1, 4, 6, 2);
  EXPECT_EQ(std::vector<int32_t>(p.begin(), p.begin() + 6), (std::vector<int32_t>{0, 0, 1, 1, 0, 0}));
  EXPECT_EQ(std::vector<int32_t>(p.begin() + 24, p.begin() + 30), (std::vector<int32_t>{0, 1, 0, 1, 2, 3}));
}

TEST(Qwen3VLVision, PositionEmbeddingIsResampledAndReordered) {
  const weights::Snapshot snapshot = weights::Snapshot::open(snapshot_dir());
  const WeightLoader loader(snapshot);
  const Qwen3VLVisionConfig config = parse_qwen3vl_vision_config(snapshot);
  EXPECT_EQ(config.grid_per_side, 6);
  const Tensor table = loader.f32("model.visual.pos_embed.weight", {36, config.hidden_size});
  const json cases = read_json(expected_dir() / "cases.json");
  for (const json& c : cases["cases"]) {
    SCOPED_TRACE(c["grid_thw"].dump());
    const auto grid = c["grid_thw"].get<std::vector<int64_t>>();
    const Tensor position = qwen3vl_position_embedding(table, 6, grid[0], grid[1], grid[2], 2);
    EXPECT_EQ(position.shape(), (Shape{grid[0] * grid[1] * grid[2], config.hidden_size}));
    EXPECT_LT(
        relative_error(position, testing::read_f32_file(expected_dir() / c["position_embedding"].get<std::string>())),
        kPositionTolerance);
  }
}

TEST(Qwen3VLVision, ConfigIsRead) {
  const weights::Snapshot snapshot = weights::Snapshot::open(snapshot_dir());
  const Qwen3VLVisionConfig c = parse_qwen3vl_vision_config(snapshot);
  EXPECT_EQ(c.depth, 3);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.heads, 2);
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.patch_values(), 3 * 2 * 4 * 4);
  EXPECT_EQ(c.merged_width(), 128);
  EXPECT_EQ(c.out_hidden_size, 24);
  EXPECT_EQ(c.deepstack_indexes, (std::vector<int>{2, 0}));
  EXPECT_EQ(c.activation, backend::Activation::kGeluTanh);
  EXPECT_EQ(c.rope_theta, 10000.0);
}

TEST(Qwen3VLVision, EncodeMatchesTheNumpyReference) {
  Loaded loaded(snapshot_dir());
  expect_matches_reference(loaded.tower, read_json(expected_dir() / "cases.json"));
}

// Copies the numpy snapshot with `edit` applied to config.json and `edit_tensor` to every tensor (return false to
// drop one).
void write_edited(const std::filesystem::path& dir, const std::function<void(json&)>& edit_config,
                  const std::function<bool(std::string&, Tensor&)>& edit_tensor) {
  json config = read_json(snapshot_dir() / "config.json");
  edit_config(config);
  std::ofstream(dir / "config.json") << config.dump();
  const weights::SafetensorsFile file = weights::SafetensorsFile::open(snapshot_dir() / "model.safetensors");
  weights::SafetensorsWriter writer;
  for (const weights::TensorInfo& info : file.tensors()) {
    std::string name = info.name;
    Tensor tensor = file.to_tensor(info.name);
    if (edit_tensor(name, tensor)) writer.add(name, tensor);
  }
  writer.write(dir / "model.safetensors");
}

TEST(Qwen3VLVision, MlxChannelsLastConvAndNamesGiveTheSameFeatures) {
  testing::ScratchDir dir;
  write_edited(
      dir.path(), [](json&) {},
      [](std::string& name, Tensor& tensor) {
        name = name.substr(std::string("model.").size());  // MLX / Hub spelling: visual.*
        if (name != "visual.patch_embed.proj.weight") return true;
        // [O, C, T, p, p] → [O, T, p, p, C], bf16 elements moved as they are.
        const Shape s = tensor.shape();
        Tensor mlx = Tensor::zeros(tensor.dtype(), {s[0], s[2], s[3], s[4], s[1]});
        const auto* src = tensor.data_as<uint16_t>();
        auto* dst = mlx.data_as<uint16_t>();
        const int64_t pp = s[3] * s[4];
        for (int64_t o = 0; o < s[0]; ++o)
          for (int64_t c = 0; c < s[1]; ++c)
            for (int64_t t = 0; t < s[2]; ++t)
              for (int64_t i = 0; i < pp; ++i)
                dst[((o * s[2] + t) * pp + i) * s[1] + c] = src[((o * s[1] + c) * s[2] + t) * pp + i];
        tensor = mlx;
        return true;
      });
  Loaded loaded(dir.path());
  expect_matches_reference(loaded.tower, read_json(expected_dir() / "cases.json"));
}

// The fused qkv stored MLX-quantized (affine 8-bit, groups of 32) splits into q, k and v by rows of codes, scales
// and biases: the features equal those of a float snapshot holding the same matrices dequantized.
TEST(Qwen3VLVision, QuantizedFusedQkvSplitsByRows) {
  testing::ScratchDir quantized, dequantized;
  json config = read_json(snapshot_dir() / "config.json");
  std::ofstream(dequantized.path() / "config.json") << config.dump();
  config["quantization"] = {{"group_size", 32}, {"bits", 8}};
  std::ofstream(quantized.path() / "config.json") << config.dump();
  const weights::SafetensorsFile file = weights::SafetensorsFile::open(snapshot_dir() / "model.safetensors");
  weights::SafetensorsWriter q_writer, f_writer;
  int quantized_modules = 0;
  for (const weights::TensorInfo& info : file.tensors()) {
    const Tensor tensor = file.to_tensor(info.name);
    if (!info.name.ends_with("attn.qkv.weight")) {
      q_writer.add(info.name, tensor);
      f_writer.add(info.name, tensor);
      continue;
    }
    ASSERT_EQ(tensor.dtype(), DType::kBF16);
    std::vector<float> values(static_cast<size_t>(tensor.elements()));
    for (size_t i = 0; i < values.size(); ++i) values[i] = bf16_to_float(tensor.data_as<uint16_t>()[i]);
    const int64_t rows = tensor.dim(0), cols = tensor.dim(1);
    const weights::Weight q = weights::quant::quantize(values.data(), rows, cols, {weights::QuantMode::kAffine, 8, 32});
    const std::string module = info.name.substr(0, info.name.size() - std::string(".weight").size());
    q_writer.add(module + ".weight", q.values);
    q_writer.add(module + ".scales", q.scales);
    q_writer.add(module + ".biases", q.biases);
    Tensor decoded = Tensor::zeros(DType::kF32, {rows, cols});
    weights::quant::dequantize_rows(q, 0, rows, decoded.data_as<float>());
    f_writer.add(info.name, decoded);
    ++quantized_modules;
  }
  EXPECT_EQ(quantized_modules, 3);
  q_writer.write(quantized.path() / "model.safetensors");
  f_writer.write(dequantized.path() / "model.safetensors");

  Loaded q(quantized.path()), f(dequantized.path());
  EXPECT_EQ(q.loader.matrix("model.visual.blocks.0.attn.qkv", 96, 32).quant.mode, weights::QuantMode::kAffine);
  const json cases = read_json(expected_dir() / "cases.json");
  for (const json& c : cases["cases"]) {
    const Qwen3VLImageFeatures a = q.tower.encode(case_pixels(c));
    const Qwen3VLImageFeatures b = f.tower.encode(case_pixels(c));
    const auto as_vector = [](const Tensor& t) {
      return std::vector<float>(t.span<float>().begin(), t.span<float>().end());
    };
    EXPECT_LT(relative_error(a.embeddings, as_vector(b.embeddings)), 1e-5);
    ASSERT_EQ(a.deepstack.size(), b.deepstack.size());
    for (size_t j = 0; j < a.deepstack.size(); ++j) {
      EXPECT_LT(relative_error(a.deepstack[j], as_vector(b.deepstack[j])), 1e-5);
    }
  }
}

std::string load_error(const std::function<void(json&)>& edit_config,
                       const std::function<bool(std::string&, Tensor&)>& edit_tensor, ErrorKind kind) {
  testing::ScratchDir dir;
  write_edited(dir.path(), edit_config, edit_tensor);
  try {
    Loaded loaded(dir.path());
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "loaded without error";
  return "";
}

const auto kKeepTensors = [](std::string&, Tensor&) { return true; };

TEST(Qwen3VLVision, BrokenConfigsNameTheField) {
  EXPECT_THAT(load_error(
                  [](json& c) {
                    c["vision_config"]["deepstack_visual_indexes"] = {0, 3};
                  },
                  kKeepTensors, ErrorKind::kInvalidFile),
              ::testing::HasSubstr("deepstack_visual_indexes"));
  EXPECT_THAT(load_error(
                  [](json& c) {
                    c["vision_config"]["deepstack_visual_indexes"] = {1, 1};
                  },
                  kKeepTensors, ErrorKind::kInvalidFile),
              ::testing::HasSubstr("distinct"));
  EXPECT_THAT(load_error([](json& c) { c["text_config"]["hidden_size"] = 32; }, kKeepTensors, ErrorKind::kInvalidFile),
              ::testing::HasSubstr("out_hidden_size"));
  EXPECT_THAT(load_error([](json& c) { c["vision_config"]["num_heads"] = 3; }, kKeepTensors, ErrorKind::kInvalidFile),
              ::testing::HasSubstr("num_heads"));
  EXPECT_THAT(load_error([](json& c) { c.erase("vision_config"); }, kKeepTensors, ErrorKind::kInvalidFile),
              ::testing::HasSubstr("vision_config"));
  EXPECT_THAT(load_error(
                  [](json& c) {
                    c["vision_config"]["rope_parameters"] = {{"rope_type", "yarn"}};
                  },
                  kKeepTensors, ErrorKind::kUnsupported),
              ::testing::HasSubstr("yarn"));
}

TEST(Qwen3VLVision, BrokenSnapshotsNameTheTensor) {
  const auto keep_config = [](json&) {};
  EXPECT_THAT(load_error(
                  keep_config, [](std::string& name, Tensor&) { return name != "model.visual.blocks.2.attn.qkv.bias"; },
                  ErrorKind::kInvalidFile),
              ::testing::HasSubstr("model.visual.blocks.2.attn.qkv.bias"));
  EXPECT_THAT(load_error(
                  keep_config,
                  [](std::string& name, Tensor&) { return name != "model.visual.deepstack_merger_list.1.norm.weight"; },
                  ErrorKind::kInvalidFile),
              ::testing::HasSubstr("deepstack_merger_list.1.norm.weight"));
  // The main merger normalises per patch ([hidden]); a [4·hidden] norm there is the DeepStack layout.
  const std::string wrong = load_error(
      keep_config,
      [](std::string& name, Tensor& tensor) {
        if (name == "model.visual.merger.norm.weight") tensor = Tensor::zeros(DType::kF32, {128});
        return true;
      },
      ErrorKind::kInvalidFile);
  EXPECT_THAT(wrong, ::testing::HasSubstr("model.visual.merger.norm.weight"));
  EXPECT_THAT(wrong, ::testing::HasSubstr("[32]"));
}

TEST(Qwen3VLVision, BadPixelsAreRefused) {
  Loaded loaded(snapshot_dir());
  const json cases = read_json(expected_dir() / "cases.json");
  ImagePixels image = case_pixels(cases["cases"][0]);
  ImagePixels odd = image;
  odd.grid_thw[2] = 7;  // not a multiple of the merge size
  EXPECT_THROW(loaded.tower.encode(odd), Error);
  ImagePixels rows = image;
  rows.grid_thw[1] = 2;  // fewer rows than the pixel values hold
  rows.soft_tokens = 0;
  EXPECT_THROW(loaded.tower.encode(rows), Error);
  ImagePixels tokens = image;
  tokens.soft_tokens += 1;
  EXPECT_THROW(loaded.tower.encode(tokens), Error);
  ImagePixels width = image;
  width.pixel_values = Tensor::zeros(DType::kF32, {image.pixel_values.dim(0), 95});
  try {
    loaded.tower.encode(width);
    ADD_FAILURE() << "encoded pixels of the wrong width";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("96"));
  }
}

}  // namespace
}  // namespace loom::model
