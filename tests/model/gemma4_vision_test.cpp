// The Gemma 4 vision tower against a numpy restatement of transformers' Gemma4VisionModel + Gemma4MultimodalEmbedder
// (tools/reference/gemma4_vision_numpy.py → tests/golden/models/numpy_gemma4_vision{,_expected}): the whole tower on
// padded, shuffled and unpadded images (finite clip bounds, standardize on, GQA, head_dim·heads ≠ hidden), the 2D RoPE
// alone and the pooler alone. The numpy side keeps transformers' formulation (padded batch with an additive mask,
// cat(fx, fx, fy, fy) cos/sin with rotate_half per half, one-hot pooling matrix), loom drops padding and uses tables.
// Then clippable-linear clamping by formula, config errors naming the field, loader and input errors.
#include "model/families/gemma4_vision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "backend/rope_table.h"
#include "model_test_util.h"
#include "weights/safetensors.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

constexpr double kTolerance = 1e-4;

std::filesystem::path snapshot_dir() {
  return testing::golden_dir() / "numpy_gemma4_vision";
}
std::filesystem::path expected_dir() {
  return testing::golden_dir() / "numpy_gemma4_vision_expected";
}

json read_json(const std::filesystem::path& path) {
  return json::parse(std::ifstream(path));
}

std::vector<int64_t> read_i64_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<int64_t> values(bytes.size() / sizeof(int64_t));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(int64_t));
  return values;
}

// max|a − b| / max|b| over the whole tensor.
double relative_error(const Tensor& actual, const std::vector<float>& expected) {
  EXPECT_EQ(actual.elements(), static_cast<int64_t>(expected.size()));
  if (actual.elements() != static_cast<int64_t>(expected.size())) return 1e9;
  return testing::row_relative_error(actual.data_as<float>(), expected.data(), actual.elements());
}

ImagePixels image_of(const json& c, const std::filesystem::path& dir, int64_t row) {
  const int64_t patches = c["patches"].get<int64_t>();
  ImagePixels image;
  image.pixel_values = Tensor::zeros(DType::kF32, {patches, row});
  image.position_ids = Tensor::zeros(DType::kI64, {patches, 2});
  const std::vector<float> pixels = testing::read_f32_file(dir / c["pixels"].get<std::string>());
  const std::vector<int64_t> positions = read_i64_file(dir / c["positions"].get<std::string>());
  EXPECT_EQ(static_cast<int64_t>(pixels.size()), patches * row);
  EXPECT_EQ(static_cast<int64_t>(positions.size()), patches * 2);
  std::copy(pixels.begin(), pixels.end(), image.pixel_values.data_as<float>());
  std::copy(positions.begin(), positions.end(), image.position_ids.data_as<int64_t>());
  image.soft_tokens = c["soft_tokens"].get<int64_t>();
  return image;
}

// Copies the numpy snapshot to `dir` with its config edited and its tensors passed through `edit` (false drops one).
void write_edited(
    const std::filesystem::path& dir, const std::function<void(json&)>& edit_config,
    const std::function<bool(std::string&, Tensor&)>& edit = [](std::string&, Tensor&) { return true; }) {
  json config = read_json(snapshot_dir() / "config.json");
  edit_config(config);
  std::ofstream(dir / "config.json") << config.dump();
  const weights::SafetensorsFile file = weights::SafetensorsFile::open(snapshot_dir() / "model.safetensors");
  weights::SafetensorsWriter writer;
  for (const weights::TensorInfo& info : file.tensors()) {
    std::string name = info.name;
    Tensor tensor = file.to_tensor(info.name);
    if (edit(name, tensor)) writer.add(name, tensor);
  }
  writer.write(dir / "model.safetensors");
}

template <typename Body>
std::string error_of(Body&& body, ErrorKind kind) {
  try {
    body();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

std::string load_error(const std::filesystem::path& dir, ErrorKind kind) {
  return error_of(
      [&] {
        const weights::Snapshot snapshot = weights::Snapshot::open(dir);
        backend::cpu::CpuBackend backend;
        Gemma4VisionTower tower(snapshot, WeightLoader(snapshot), backend);
      },
      kind);
}

struct Loaded {
  weights::Snapshot snapshot;
  backend::cpu::CpuBackend backend;
  WeightLoader loader{snapshot};
  Gemma4VisionTower tower{snapshot, loader, backend};
  explicit Loaded(const std::filesystem::path& dir) : snapshot(weights::Snapshot::open(dir)) {}
};

TEST(Gemma4Vision, ConfigFromTheSnapshot) {
  Loaded f(snapshot_dir());
  const Gemma4VisionConfig& c = f.tower.config();
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.heads, 4);
  EXPECT_EQ(c.kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.patch_size, 4);
  EXPECT_EQ(c.pooling_kernel_size, 3);
  EXPECT_EQ(c.position_embedding_size, 16);
  EXPECT_TRUE(c.use_clipped_linears);
  EXPECT_TRUE(c.standardize);
  EXPECT_EQ(c.rope_theta, 100.0);
  EXPECT_EQ(c.text_hidden_size, 24);
}

TEST(Gemma4Vision, ConfigDefaultsAreTransformers) {
  // An empty vision_config is transformers' Gemma4VisionConfig(): the E2B tower.
  const json empty = json::object();
  const Gemma4VisionConfig c = parse_gemma4_vision_config(JsonFields(empty, "config.json: vision_config"), 1536);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.layers, 16);
  EXPECT_EQ(c.heads, 12);
  EXPECT_EQ(c.kv_heads, 12);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.patch_size, 16);
  EXPECT_EQ(c.pooling_kernel_size, 3);
  EXPECT_EQ(c.position_embedding_size, 10240);
  EXPECT_FALSE(c.use_clipped_linears);
  EXPECT_FALSE(c.standardize);
  EXPECT_EQ(c.rope_theta, 100.0);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.activation, backend::Activation::kGeluTanh);
  EXPECT_EQ(c.text_hidden_size, 1536);
  // rope_type "default" is read as the same axial RoPE; a legacy top-level rope_theta is honoured.
  const json legacy = {{"rope_theta", 50.0}};
  EXPECT_EQ(parse_gemma4_vision_config(JsonFields(legacy, "v"), 8).rope_theta, 50.0);
  const json spelled = {{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 25.0}}}};
  EXPECT_EQ(parse_gemma4_vision_config(JsonFields(spelled, "v"), 8).rope_theta, 25.0);
}

TEST(Gemma4Vision, TowerMatchesTheNumpyReference) {
  Loaded f(snapshot_dir());
  const json expected = read_json(expected_dir() / "cases.json");
  ASSERT_EQ(expected["cases"].size(), 3u);
  for (const json& c : expected["cases"]) {
    const std::string name = c["name"].get<std::string>();
    const ImagePixels image = image_of(c, expected_dir(), f.tower.config().patch_elements());
    const Tensor soft = f.tower.encode_soft_tokens(image);
    EXPECT_EQ(soft.shape(), (Shape{image.soft_tokens, 32})) << name;
    EXPECT_LE(relative_error(soft, testing::read_f32_file(expected_dir() / c["soft"].get<std::string>())), kTolerance)
        << name;
    const Tensor embeddings = f.tower.encode(image);
    EXPECT_EQ(embeddings.shape(), (Shape{image.soft_tokens, 24})) << name;
    EXPECT_LE(relative_error(embeddings, testing::read_f32_file(expected_dir() / c["embeddings"].get<std::string>())),
              kTolerance)
        << name;
  }
}

TEST(Gemma4Vision, ClipBoundsChangeTheResult) {
  // The same weights with use_clipped_linears off must NOT match: the fixture's bounds bite, so the test above
  // proves they are read and applied.
  testing::ScratchDir dir;
  write_edited(dir.path(), [](json& config) { config["vision_config"]["use_clipped_linears"] = false; });
  Loaded f(dir.path());
  const json c = read_json(expected_dir() / "cases.json")["cases"][0];
  const Tensor embeddings = f.tower.encode(image_of(c, expected_dir(), f.tower.config().patch_elements()));
  EXPECT_GT(relative_error(embeddings, testing::read_f32_file(expected_dir() / c["embeddings"].get<std::string>())),
            1e-2);
}

TEST(Gemma4Vision, RopeSplitsTheHeadIntoXAndYHalves) {
  const json r = read_json(expected_dir() / "cases.json")["rope"];
  const int64_t tokens = r["tokens"], heads = r["heads"], d = r["head_dim"];
  const backend::RopeTable table = backend::make_rope_table(
      {.kind = backend::RopeKind::kTwoDHalves, .head_dim = static_cast<int>(d), .theta = r["theta"].get<double>()});
  Tensor x = Tensor::zeros(DType::kF32, {tokens, heads, d});
  const std::vector<float> input = testing::read_f32_file(expected_dir() / r["input"].get<std::string>());
  std::copy(input.begin(), input.end(), x.data_as<float>());
  std::vector<int32_t> positions(static_cast<size_t>(2 * tokens));
  for (int64_t t = 0; t < tokens; ++t) {
    positions[static_cast<size_t>(t)] = r["positions"][t][0].get<int32_t>();           // x
    positions[static_cast<size_t>(tokens + t)] = r["positions"][t][1].get<int32_t>();  // y
  }
  backend::cpu::CpuBackend backend;
  backend.rope(x, table, positions);
  EXPECT_LE(relative_error(x, testing::read_f32_file(expected_dir() / r["output"].get<std::string>())), 1e-6);
}

TEST(Gemma4Vision, PoolerAveragesByPosition) {
  const json p = read_json(expected_dir() / "cases.json")["pooler"];
  const int64_t patches = p["patches"], hidden = p["hidden"];
  const std::vector<float> input = testing::read_f32_file(expected_dir() / p["input"].get<std::string>());
  std::vector<int64_t> xs, ys, rows;
  for (int64_t i = 0; i < patches; ++i) {
    const int64_t x = p["positions"][i][0], y = p["positions"][i][1];
    if (x == -1 && y == -1) continue;
    xs.push_back(x);
    ys.push_back(y);
    rows.push_back(i);
  }
  const Gemma4PoolPlan plan = plan_gemma4_pooling(xs, ys, p["kernel"].get<int>(), p["output_length"], true);
  ASSERT_EQ(plan.tokens, p["tokens"].get<int64_t>());
  Tensor pooled = Tensor::zeros(DType::kF32, {plan.tokens, hidden});
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t j = 0; j < hidden; ++j) {
      pooled.data_as<float>()[plan.token_of_patch[i] * hidden + j] += input[rows[i] * hidden + j] / 9.0f;
    }
  }
  EXPECT_LE(relative_error(pooled, testing::read_f32_file(expected_dir() / p["output"].get<std::string>())), 1e-6);
}

TEST(Gemma4Vision, PoolerOrderIsRowMajorOverThePooledGrid) {
  // A 6×6 patch grid, k = 3: token = floor(x/3) + 2·floor(y/3).
  std::vector<int64_t> xs, ys;
  for (int64_t y = 0; y < 6; ++y) {
    for (int64_t x = 0; x < 6; ++x) {
      xs.push_back(x);
      ys.push_back(y);
    }
  }
  const Gemma4PoolPlan plan = plan_gemma4_pooling(xs, ys, 3, 4, false);
  EXPECT_EQ(plan.tokens, 4);
  EXPECT_EQ(plan.token_of_patch[0], 0);          // (0, 0)
  EXPECT_EQ(plan.token_of_patch[5], 1);          // (5, 0)
  EXPECT_EQ(plan.token_of_patch[3 * 6], 2);      // (0, 3)
  EXPECT_EQ(plan.token_of_patch[35], 3);         // (5, 5)
  EXPECT_EQ(plan.token_of_patch[2 * 6 + 2], 0);  // (2, 2)
  // A patch past the budget's token count is refused, as transformers' one_hot would.
  EXPECT_NE(error_of([&] { (void)plan_gemma4_pooling(xs, ys, 3, 3, false); }, ErrorKind::kInvalidRequest)
                .find("outside the 3 tokens"),
            std::string::npos);
}

TEST(Gemma4Vision, ClippableLinearClampsInputAndOutput) {
  // W = [[1, 1], [1, −1]]: y0 = x0 + x1, y1 = x0 − x1; input clamped to [−1, 2], output to [−0.5, 2.5].
  backend::cpu::CpuBackend backend;
  Linear layer;
  layer.weight.rows = 2;
  layer.weight.cols = 2;
  layer.weight.values = Tensor::zeros(DType::kF32, {2, 2});
  const float w[] = {1, 1, 1, -1};
  std::copy(std::begin(w), std::end(w), layer.weight.values.data_as<float>());
  layer.clip = {.input_min = -1, .input_max = 2, .output_min = -0.5f, .output_max = 2.5f};
  Tensor x = Tensor::zeros(DType::kF32, {3, 2});
  const float xs[] = {3, 0.5f, -4, 1, 0.25f, 0.5f};
  std::copy(std::begin(xs), std::end(xs), x.data_as<float>());
  Tensor out = Tensor::zeros(DType::kF32, {3, 2});
  Scratch scratch;
  linear(backend, layer, x, out, &scratch);
  // Row 0: (2, 0.5) → (2.5, 1.5). Row 1: (−1, 1) → (0, −2 → −0.5). Row 2: (0.25, 0.5) → (0.75, −0.25).
  const float expected[] = {2.5f, 1.5f, 0, -0.5f, 0.75f, -0.25f};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(out.data_as<float>()[i], expected[i]) << i;
  EXPECT_EQ(x.data_as<float>()[0], 3.0f);  // the input is left alone
  // Without a scratch the same; without bounds no clamping.
  Tensor out2 = Tensor::zeros(DType::kF32, {3, 2});
  linear(backend, layer, x, out2);
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(out2.data_as<float>()[i], expected[i]) << i;
  layer.clip = {};
  linear(backend, layer, x, out2);
  EXPECT_FLOAT_EQ(out2.data_as<float>()[0], 3.5f);
  EXPECT_FLOAT_EQ(out2.data_as<float>()[3], -5.0f);
}

TEST(Gemma4Vision, ConfigErrorsNameTheField) {
  const auto config_error = [](const std::function<void(json&)>& edit, ErrorKind kind) {
    testing::ScratchDir dir;
    write_edited(dir.path(), edit);
    return load_error(dir.path(), kind);
  };
  std::string e = config_error([](json& c) { c.erase("vision_config"); }, ErrorKind::kInvalidFile);
  EXPECT_NE(e.find("vision_config"), std::string::npos) << e;
  e = config_error([](json& c) { c["vision_config"]["head_dim"] = 18; }, ErrorKind::kInvalidFile);
  EXPECT_NE(e.find("\"head_dim\""), std::string::npos) << e;
  EXPECT_NE(e.find("vision_config"), std::string::npos) << e;
  e = config_error([](json& c) { c["vision_config"]["num_key_value_heads"] = 3; }, ErrorKind::kInvalidFile);
  EXPECT_NE(e.find("num_key_value_heads"), std::string::npos) << e;
  e = config_error([](json& c) { c["vision_config"]["pooling_kernel_size"] = 0; }, ErrorKind::kInvalidFile);
  EXPECT_NE(e.find("pooling_kernel_size"), std::string::npos) << e;
  e = config_error([](json& c) { c["vision_config"]["patch_size"] = "16"; }, ErrorKind::kInvalidFile);
  EXPECT_NE(e.find("patch_size"), std::string::npos) << e;
  e = config_error([](json& c) { c["vision_config"]["rope_parameters"]["rope_type"] = "linear"; },
                   ErrorKind::kUnsupported);
  EXPECT_NE(e.find("rope_type"), std::string::npos) << e;
  e = config_error([](json& c) { c["vision_config"]["hidden_activation"] = "relu"; }, ErrorKind::kUnsupported);
  EXPECT_NE(e.find("hidden_activation"), std::string::npos) << e;
  e = config_error([](json& c) { c["vision_config"]["attention_bias"] = true; }, ErrorKind::kUnsupported);
  EXPECT_NE(e.find("attention_bias"), std::string::npos) << e;
  e = config_error([](json& c) { c["text_config"]["hidden_size"] = -3; }, ErrorKind::kInvalidFile);
  EXPECT_NE(e.find("hidden_size"), std::string::npos) << e;
}

TEST(Gemma4Vision, LoaderErrorsNameTheTensor) {
  testing::ScratchDir dir;
  write_edited(
      dir.path(), [](json&) {},
      [](std::string& name, Tensor&) { return name != "vision_tower.encoder.layers.1.mlp.up_proj.output_max"; });
  std::string e = load_error(dir.path(), ErrorKind::kInvalidFile);
  EXPECT_NE(e.find("model.vision_tower.encoder.layers.1.mlp.up_proj.output_max"), std::string::npos) << e;

  testing::ScratchDir dir2;
  write_edited(dir2.path(), [](json& c) { c["vision_config"]["position_embedding_size"] = 20; });
  e = load_error(dir2.path(), ErrorKind::kInvalidFile);
  EXPECT_NE(e.find("position_embedding_table"), std::string::npos) << e;
  EXPECT_NE(e.find("[2, 20, 32]"), std::string::npos) << e;

  testing::ScratchDir dir3;
  write_edited(
      dir3.path(), [](json& c) { c["vision_config"]["standardize"] = false; },
      [](std::string& name, Tensor&) { return name.find("std_") == std::string::npos; });
  EXPECT_NO_THROW({
    const weights::Snapshot snapshot = weights::Snapshot::open(dir3.path());
    backend::cpu::CpuBackend backend;
    Gemma4VisionTower tower(snapshot, WeightLoader(snapshot), backend);
  });
}

TEST(Gemma4Vision, BadInputIsRefused) {
  Loaded f(snapshot_dir());
  const json c = read_json(expected_dir() / "cases.json")["cases"][0];
  const int64_t row = f.tower.config().patch_elements();
  {
    ImagePixels image = image_of(c, expected_dir(), row);
    image.soft_tokens = 5;
    const std::string e = error_of([&] { (void)f.tower.encode(image); }, ErrorKind::kInvalidRequest);
    EXPECT_NE(e.find("5 soft tokens"), std::string::npos) << e;
  }
  {
    ImagePixels image = image_of(c, expected_dir(), row);
    image.position_ids.data_as<int64_t>()[2 * 7] = 16;  // x beyond position_embedding_size
    const std::string e = error_of([&] { (void)f.tower.encode(image); }, ErrorKind::kInvalidRequest);
    EXPECT_NE(e.find("position_ids[7]"), std::string::npos) << e;
  }
  {
    ImagePixels image = image_of(c, expected_dir(), row);
    image.position_ids = Tensor::zeros(DType::kI64, {80, 2});
    const std::string e = error_of([&] { (void)f.tower.encode(image); }, ErrorKind::kInvalidRequest);
    EXPECT_NE(e.find("position_ids"), std::string::npos) << e;
  }
  {
    ImagePixels image;
    image.pixel_values = Tensor::zeros(DType::kF32, {10, row});
    image.position_ids = Tensor::zeros(DType::kI64, {10, 2});
    const std::string e = error_of([&] { (void)f.tower.encode(image); }, ErrorKind::kInvalidRequest);
    EXPECT_NE(e.find("multiple of pooling_kernel_size"), std::string::npos) << e;
  }
  {
    ImagePixels image;
    image.pixel_values = Tensor::zeros(DType::kF32, {9, row + 1});
    image.position_ids = Tensor::zeros(DType::kI64, {9, 2});
    const std::string e = error_of([&] { (void)f.tower.encode(image); }, ErrorKind::kInvalidRequest);
    EXPECT_NE(e.find("pixel_values"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace loom::model
