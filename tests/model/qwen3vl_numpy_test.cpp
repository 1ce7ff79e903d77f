// The Qwen3 decoder family against an independent numpy transcription of transformers' modeling_qwen3_vl_moe
// (tools/reference/qwen3vl_numpy_reference.py → tests/golden/models/numpy_qwen3vl_moe{,_expected}): a 3-layer
// Qwen3-VL-MoE decoder (one dense layer, two sparse ones, 2 DeepStack features) fed the image features the vision
// tower would return. Checks the logits at every prompt position (whole prompt, and in chunks that split images) and
// at each decode step (positions index + rope_delta on every axis), the M-RoPE rotation and the router on their own,
// the other expert layouts (per expert, MLX switch_mlp, transformers' in-memory orientation) and the text-only
// Qwen3MoeForCausalLM form of the same weights.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "backend/rope_table.h"
#include "model/families/qwen3_moe.h"
#include "model/families/qwen3vl.h"
#include "model/registry.h"
#include "model_test_util.h"
#include "mrope_runner.h"
#include "weights/safetensors.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;
using testing::MropeRunner;

constexpr double kLogitTolerance = 1e-4;

std::filesystem::path snapshot_dir() {
  return testing::golden_dir() / "numpy_qwen3vl_moe";
}
std::filesystem::path expected_dir() {
  return testing::golden_dir() / "numpy_qwen3vl_moe_expected";
}

const json& expected() {
  static const json j = json::parse(std::ifstream(expected_dir() / "expected.json"));
  return j;
}

// Runs case `c` through `model` (prompt in chunks of `chunk`, 0 = whole; then the decode steps) and compares every
// logits row with the reference.
void run_case(Model& model, const json& c, int64_t chunk, const std::string& label) {
  const int64_t vocab = model.info().vocab_size;
  const int axes = model.info().position_axes;
  const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto n = static_cast<int64_t>(prompt.size());
  const auto positions = c["positions"].get<std::vector<std::vector<int32_t>>>();
  const auto delta = c["rope_delta"].get<int32_t>();
  const std::vector<int32_t> decode = c["decode_ids"].get<std::vector<int32_t>>();
  const std::vector<float> want = testing::read_f32_file(expected_dir() / c["logits_file"].get<std::string>());
  ASSERT_EQ(static_cast<int64_t>(want.size()), (n + static_cast<int64_t>(decode.size())) * vocab);
  std::vector<float> features = testing::read_f32_file(expected_dir() / c["features_file"].get<std::string>());
  std::vector<int64_t> image_rows;
  for (int64_t i = 0; i < n; ++i) {
    if (prompt[static_cast<size_t>(i)] == model.info().image_token_id) image_rows.push_back(i);
  }
  const std::string name = c["name"].get<std::string>() + " " + label + (chunk > 0 ? " chunked" : " whole");

  MropeRunner runner(model, n + static_cast<int64_t>(decode.size()));
  for (int64_t begin = 0; begin < n;) {
    const int64_t end = chunk > 0 ? std::min(n, begin + chunk) : n;
    std::vector<std::vector<int32_t>> pos(static_cast<size_t>(axes));
    for (int a = 0; a < axes; ++a) {
      pos[static_cast<size_t>(a)].assign(positions[static_cast<size_t>(a)].begin() + begin,
                                         positions[static_cast<size_t>(a)].begin() + end);
    }
    const Tensor logits = runner.step({prompt.begin() + begin, prompt.begin() + end}, pos, features, image_rows, true);
    ASSERT_EQ(logits.shape(), (Shape{end - begin, vocab})) << name;
    for (int64_t r = 0; r < end - begin; ++r) {
      EXPECT_LE(
          testing::row_relative_error(logits.data_as<float>() + r * vocab, want.data() + (begin + r) * vocab, vocab),
          kLogitTolerance)
          << name << " position " << begin + r;
    }
    begin = end;
  }
  for (size_t k = 0; k < decode.size(); ++k) {
    const auto index = static_cast<int32_t>(n + static_cast<int64_t>(k));
    const std::vector<std::vector<int32_t>> pos(static_cast<size_t>(axes), {index + delta});
    const Tensor logits = runner.step({decode[k]}, pos, features, image_rows, false);
    ASSERT_EQ(logits.shape(), (Shape{1, vocab})) << name;
    EXPECT_LE(testing::row_relative_error(logits.data_as<float>(), want.data() + (n + static_cast<int64_t>(k)) * vocab,
                                          vocab),
              kLogitTolerance)
        << name << " decode step " << k;
  }
}

std::unique_ptr<Model> load(const std::filesystem::path& dir, backend::Backend& backend) {
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  return load_model(snapshot, backend);
}

TEST(Qwen3VLNumpy, ModelInfo) {
  backend::cpu::CpuBackend backend;
  const auto model = load(snapshot_dir(), backend);
  const ModelInfo& info = model->info();
  EXPECT_EQ(info.architecture, "Qwen3VLMoeForConditionalGeneration");
  EXPECT_EQ(info.vocab_size, 96);
  EXPECT_EQ(info.hidden_size, 32);
  EXPECT_EQ(info.image_embedding_width, 32 * 3);  // merger + 2 DeepStack features
  EXPECT_EQ(info.position_axes, 3);
  EXPECT_EQ(info.image_token_id, 90);
  EXPECT_FALSE(info.bidirectional_images);
  ASSERT_EQ(info.kv.size(), 3u);
  EXPECT_EQ(info.kv[0].kv_heads, 2);
  EXPECT_EQ(info.kv[0].head_dim, 16);
  EXPECT_EQ(info.stop_ids, (std::vector<int32_t>{3}));
  // The numpy snapshot has no vision tower: it serves text, and encode_image refuses.
  EXPECT_THROW(model->encode_image({}), Error);
}

TEST(Qwen3VLNumpy, LogitsWholeChunkedAndDecode) {
  backend::cpu::CpuBackend backend;
  const auto model = load(snapshot_dir(), backend);
  for (const json& c : expected()["cases"]) {
    run_case(*model, c, 0, "fused");
    run_case(*model, c, 5, "fused");  // chunks of 5 split both images
  }
}

// The reference's M-RoPE (recomposition_frequencies over [3, n] positions) against the backend's rope with our table.
TEST(Qwen3VLNumpy, MropeMatchesTransformersRecomposition) {
  const json& r = expected()["rope"];
  backend::RopeSpec spec{.kind = backend::RopeKind::kMropeInterleaved,
                         .head_dim = r["head_dim"].get<int>(),
                         .theta = r["theta"].get<double>()};
  const auto section = r["section"].get<std::vector<int>>();
  spec.mrope_section = {section[0], section[1], section[2]};
  const auto shape = r["shape"].get<Shape>();
  std::vector<float> x = r["x"].get<std::vector<float>>();
  std::vector<int32_t> positions;
  for (const auto& axis : r["positions"].get<std::vector<std::vector<int32_t>>>()) {
    positions.insert(positions.end(), axis.begin(), axis.end());
  }
  Tensor t = Tensor::borrow(DType::kF32, shape, x.data());
  backend::cpu::CpuBackend backend;
  backend.rope(t, backend::make_rope_table(spec), positions);
  const auto want = r["expected"].get<std::vector<double>>();
  ASSERT_EQ(want.size(), x.size());
  // inv_freq may differ from the reference's float32 pow by an ulp, which positions up to 500 turn into angle errors
  // of ~3e-5; a wrong axis or frequency assignment is off by O(1).
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], want[i], 1e-4) << "element " << i;
}

TEST(Qwen3VLNumpy, RouterMatchesSoftmaxTopKRenormalised) {
  const json& r = expected()["router"];
  const auto logits = r["logits"].get<std::vector<std::vector<float>>>();
  std::vector<float> flat;
  for (const auto& row : logits) flat.insert(flat.end(), row.begin(), row.end());
  const Tensor t = Tensor::borrow(
      DType::kF32, {static_cast<int64_t>(logits.size()), static_cast<int64_t>(logits[0].size())}, flat.data());
  const int k = r["top_k"].get<int>();
  const auto experts = r["experts"].get<std::vector<std::vector<int32_t>>>();
  for (const bool normalize : {true, false}) {
    const MoeRouting routing = route_top_k(t, k, normalize);
    const auto weights = r[normalize ? "normalized" : "raw"].get<std::vector<std::vector<double>>>();
    for (size_t row = 0; row < logits.size(); ++row) {
      for (int j = 0; j < k; ++j) {
        const size_t at = row * static_cast<size_t>(k) + static_cast<size_t>(j);
        EXPECT_EQ(routing.experts[at], experts[row][static_cast<size_t>(j)]) << row << " " << j;
        EXPECT_NEAR(routing.weights[at], weights[row][static_cast<size_t>(j)], 1e-6) << row << " " << j;
      }
    }
  }
}

// Copies the snapshot's tensors through `edit` (which appends what to write for each) into dir with `config`.
void write_edited(const std::filesystem::path& dir, const json& config,
                  const std::function<void(const std::string&, const Tensor&, weights::SafetensorsWriter&)>& edit) {
  std::ofstream(dir / "config.json") << config.dump();
  const weights::SafetensorsFile file = weights::SafetensorsFile::open(snapshot_dir() / "model.safetensors");
  weights::SafetensorsWriter writer;
  for (const weights::TensorInfo& info : file.tensors()) edit(info.name, file.to_tensor(info.name), writer);
  writer.write(dir / "model.safetensors");
}

json read_config() {
  return json::parse(std::ifstream(snapshot_dir() / "config.json"));
}

// [e, a, b] float32 → expert e's [a, b] slice, or its transpose [b, a].
Tensor expert_matrix(const Tensor& t, int64_t e, bool transpose) {
  const int64_t a = t.dim(1), b = t.dim(2);
  Tensor out = Tensor::zeros(DType::kF32, transpose ? Shape{b, a} : Shape{a, b});
  for (int64_t i = 0; i < a; ++i) {
    for (int64_t j = 0; j < b; ++j) {
      out.data_as<float>()[transpose ? j * a + i : i * b + j] = t.data_as<float>()[(e * a + i) * b + j];
    }
  }
  return out;
}

// Rows [r0, r0 + rows) of a [n, cols] float32 matrix.
Tensor row_block(const Tensor& m, int64_t r0, int64_t rows) {
  Tensor out = Tensor::zeros(DType::kF32, {rows, m.dim(1)});
  std::copy_n(m.data_as<float>() + r0 * m.dim(1), rows * m.dim(1), out.data_as<float>());
  return out;
}

Tensor stack(const std::vector<Tensor>& parts) {
  Shape shape = parts[0].shape();
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor out = Tensor::zeros(DType::kF32, shape);
  for (size_t e = 0; e < parts.size(); ++e) {
    std::copy_n(parts[e].data_as<float>(), parts[e].elements(), out.data_as<float>() + e * parts[e].elements());
  }
  return out;
}

enum class Layout { kPerExpert, kMlxStacked, kInMemory };

// The fused experts rewritten in another layout; the model must compute the same logits.
void expect_layout(Layout layout) {
  testing::ScratchDir dir;
  constexpr int64_t kInter = 24;
  write_edited(dir.path(), read_config(), [&](const std::string& name, const Tensor& t, weights::SafetensorsWriter& w) {
    const bool gate_up = name.ends_with("experts.gate_up_proj"), down = name.ends_with("experts.down_proj");
    if (!gate_up && !down) return w.add(name, t);
    const std::string mlp = name.substr(0, name.find("experts."));
    if (layout == Layout::kInMemory)
      return w.add(name, stack({expert_matrix(t, 0, true), expert_matrix(t, 1, true), expert_matrix(t, 2, true),
                                expert_matrix(t, 3, true)}));
    std::vector<Tensor> a, b;
    for (int64_t e = 0; e < t.dim(0); ++e) {
      const Tensor m = expert_matrix(t, e, true);  // [out, in]
      if (gate_up) {
        a.push_back(row_block(m, 0, kInter));
        b.push_back(row_block(m, kInter, kInter));
      } else {
        a.push_back(m);
      }
    }
    if (layout == Layout::kMlxStacked) {
      if (gate_up) {
        w.add(mlp + "switch_mlp.gate_proj.weight", stack(a));
        w.add(mlp + "switch_mlp.up_proj.weight", stack(b));
      } else {
        w.add(mlp + "switch_mlp.down_proj.weight", stack(a));
      }
      return;
    }
    for (size_t e = 0; e < a.size(); ++e) {
      const std::string p = mlp + "experts." + std::to_string(e) + ".";
      if (gate_up) {
        w.add(p + "gate_proj.weight", a[e]);
        w.add(p + "up_proj.weight", b[e]);
      } else {
        w.add(p + "down_proj.weight", a[e]);
      }
    }
  });
  backend::cpu::CpuBackend backend;
  const auto model = load(dir.path(), backend);
  for (const json& c : expected()["cases"]) run_case(*model, c, 0, "rewritten");
}

TEST(Qwen3VLNumpy, PerExpertLayout) {
  expect_layout(Layout::kPerExpert);
}
TEST(Qwen3VLNumpy, MlxSwitchMlpLayout) {
  expect_layout(Layout::kMlxStacked);
}
TEST(Qwen3VLNumpy, TransformersInMemoryOrientation) {
  expect_layout(Layout::kInMemory);
}

// The same decoder as a text-only Qwen3MoeForCausalLM (text fields at the top level, names model.*): the text-only
// case's positions are equal on all axes, where M-RoPE is plain RoPE.
TEST(Qwen3VLNumpy, TextOnlyQwen3MoeCausalLm) {
  testing::ScratchDir dir;
  json config = read_config()["text_config"];
  config["architectures"] = {"Qwen3MoeForCausalLM"};
  config["norm_topk_prob"] = true;
  config["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5000.0}};
  config["tie_word_embeddings"] = true;
  write_edited(dir.path(), config, [](const std::string& name, const Tensor& t, weights::SafetensorsWriter& w) {
    w.add("model." + name.substr(std::string("model.language_model.").size()), t);
  });
  backend::cpu::CpuBackend backend;
  const auto model = load(dir.path(), backend);
  EXPECT_EQ(model->info().position_axes, 1);
  EXPECT_EQ(model->info().image_token_id, -1);
  EXPECT_THROW(model->encode_image({}), Error);
  json c = expected()["cases"][0];
  ASSERT_EQ(c["name"], "text_only");
  run_case(*model, c, 0, "Qwen3MoeForCausalLM");
  run_case(*model, c, 5, "Qwen3MoeForCausalLM");

  // Without norm_topk_prob (Qwen3-MoE's default) the routing weights differ and so do the logits.
  config.erase("norm_topk_prob");
  std::ofstream(dir.path() / "config.json") << config.dump();
  const auto unnormalized = load(dir.path(), backend);
  EXPECT_FALSE(dynamic_cast<Qwen3VLModel&>(*unnormalized).config().moe->normalize_top_k);
}

TEST(Qwen3VLNumpy, UntiedWithoutLmHeadIsNamed) {
  testing::ScratchDir dir;
  json config = read_config();
  config["tie_word_embeddings"] = false;
  write_edited(dir.path(), config,
               [](const std::string& name, const Tensor& t, weights::SafetensorsWriter& w) { w.add(name, t); });
  backend::cpu::CpuBackend backend;
  try {
    (void)load(dir.path(), backend);
    ADD_FAILURE() << "loaded without lm_head";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidFile);
    EXPECT_NE(std::string(e.what()).find("lm_head.weight"), std::string::npos) << e.what();
  }
}

TEST(Qwen3VLNumpy, ImageRowsOfTheWrongWidthAreRefused) {
  backend::cpu::CpuBackend backend;
  const auto model = load(snapshot_dir(), backend);
  const json& c = expected()["cases"][1];
  const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  std::vector<int64_t> rows;
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] == 90) rows.push_back(static_cast<int64_t>(i));
  }
  std::vector<float> narrow(rows.size() * 32);
  backend::KvCache cache({.layers = model->info().kv, .blocks = 4});
  std::vector<int32_t> table;
  cache.reserve(table, 8);
  backend::Batch batch;
  batch.token_ids = {prompt.begin() + rows[0], prompt.begin() + rows[0] + 2};
  batch.position_axes = 3;
  batch.positions.assign(6, 0);
  batch.sequences.push_back({.token_offset = 0, .token_count = 2, .kv_start = 0, .block_table = table});
  const ImageRows image{0, Tensor::borrow(DType::kF32, {2, 32}, narrow.data())};  // hidden only: no DeepStack columns
  EXPECT_THROW(model->forward({.batch = &batch, .images = {&image, 1}, .all_logits = false}, cache), Error);
  cache.release(table);
}

}  // namespace
}  // namespace loom::model
