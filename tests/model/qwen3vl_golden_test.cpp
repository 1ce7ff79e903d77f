// The Qwen3 family against Hugging Face transformers (float32 on the bf16-rounded weights of tiny snapshots):
// tests/golden/models/tiny_{qwen3vl,qwen3vl_moe,qwen3}{,_expected} and the loom-quantized copies
// tiny_qwen3vl_{affine4,mxfp4}{,_expected} (reference = transformers on the dequantized weights), all made by
// tools/reference/make_tiny_qwen3vl.py. Each test skips, naming the folder, when its fixture is absent.
//
// Per case: the prompt runs through forward() with all_logits (whole, and in chunks of 7 that split images) at the
// positions transformers' get_rope_index computed, with the image rows taken from the reference vision tower's
// output (merger + DeepStack columns), so the decoder is checked on its own; logits at every prompt position must
// match within 1e-4 (max|a − b| / max|b| per row). Then 16 greedy tokens are decoded one step at a time through the
// KV cache at position index + rope_delta on every axis: the ids must equal the reference's and its top-5 logprobs
// must match ours within 1e-3. When loom's vision tower is built in, the same runs once more with encode_image on
// the case's pixels.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "golden_prompt.h"
#include "model/registry.h"
#include "model_test_util.h"
#include "mrope_runner.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

constexpr double kLogitTolerance = 1e-4;
constexpr double kLogprobTolerance = 1e-3;
constexpr int64_t kChunk = 7;

// Image features of a case: the reference tower's output, or ours from the case's pixels.
std::vector<float> case_features(Model& model, const std::filesystem::path& expected, const json& c, bool tower) {
  if (c["num_images"].get<int>() == 0) return {};
  if (!tower) return testing::read_f32_file(expected / c["features_file"].get<std::string>());
  const std::vector<float> pixels = testing::read_f32_file(expected / c["pixels_file"].get<std::string>());
  const auto grids = c["grids"].get<std::vector<std::vector<int64_t>>>();
  const int64_t row_width = static_cast<int64_t>(pixels.size()) / [&] {
    int64_t rows = 0;
    for (const auto& g : grids) rows += g[0] * g[1] * g[2];
    return rows;
  }();
  std::vector<float> features;
  int64_t row = 0;
  for (const auto& g : grids) {
    const Tensor e = model.encode_image(testing::qwen3vl_image(pixels, row, row_width, g, 2));
    features.insert(features.end(), e.data_as<float>(), e.data_as<float>() + e.elements());
    row += g[0] * g[1] * g[2];
  }
  return features;
}

void run_case(Model& model, const std::filesystem::path& expected, const json& c, int64_t chunk, bool tower) {
  const int64_t vocab = model.info().vocab_size;
  const int axes = model.info().position_axes;
  const std::string name = c["name"].get<std::string>() + (chunk > 0 ? " (chunked)" : " (whole)");
  const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto n = static_cast<int64_t>(prompt.size());
  std::vector<std::vector<int32_t>> positions;
  int32_t delta = 0;
  if (axes == 3) {
    positions = c["positions"].get<std::vector<std::vector<int32_t>>>();
    delta = c["rope_delta"].get<int32_t>();
  } else {
    positions.emplace_back();
    for (int32_t i = 0; i < n; ++i) positions[0].push_back(i);
  }
  const std::vector<float> want = testing::read_f32_file(expected / c["logits_file"].get<std::string>());
  ASSERT_EQ(static_cast<int64_t>(want.size()), n * vocab) << name;
  std::vector<float> features = case_features(model, expected, c, tower);
  std::vector<int64_t> image_rows;
  for (int64_t i = 0; i < n; ++i) {
    if (prompt[static_cast<size_t>(i)] == model.info().image_token_id) image_rows.push_back(i);
  }
  ASSERT_EQ(static_cast<int64_t>(features.size()), static_cast<int64_t>(image_rows.size()) * model.info().image_width())
      << name;

  const json& steps = c["steps"];
  testing::MropeRunner runner(model, n + static_cast<int64_t>(steps.size()));
  std::vector<float> last;
  for (int64_t begin = 0; begin < n;) {
    const int64_t end = chunk > 0 ? std::min(n, begin + chunk) : n;
    std::vector<std::vector<int32_t>> pos;
    for (const auto& axis : positions) pos.emplace_back(axis.begin() + begin, axis.begin() + end);
    const Tensor logits = runner.step({prompt.begin() + begin, prompt.begin() + end}, pos, features, image_rows, true);
    ASSERT_EQ(logits.shape(), (Shape{end - begin, vocab})) << name;
    for (int64_t r = 0; r < end - begin; ++r) {
      EXPECT_LE(
          testing::row_relative_error(logits.data_as<float>() + r * vocab, want.data() + (begin + r) * vocab, vocab),
          kLogitTolerance)
          << name << " position " << begin + r;
    }
    last.assign(logits.data_as<float>() + (end - begin - 1) * vocab, logits.data_as<float>() + (end - begin) * vocab);
    begin = end;
  }

  std::vector<int32_t> completion;
  for (size_t k = 0; k < steps.size(); ++k) {
    const std::vector<double> lp = testing::log_softmax(last.data(), vocab);
    for (const json& entry : steps[k]["top"]) {
      const int id = entry[0].get<int>();
      EXPECT_NEAR(lp[static_cast<size_t>(id)], entry[1].get<double>(), kLogprobTolerance)
          << name << " step " << k << " id " << id;
    }
    completion.push_back(static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin()));
    if (k + 1 == steps.size()) break;
    const auto index = static_cast<int32_t>(n + static_cast<int64_t>(k));
    const std::vector<std::vector<int32_t>> pos(static_cast<size_t>(axes), {index + delta});
    const Tensor logits = runner.step({completion.back()}, pos, features, image_rows, false);
    ASSERT_EQ(logits.shape(), (Shape{1, vocab})) << name;
    last.assign(logits.data_as<float>(), logits.data_as<float>() + vocab);
  }
  EXPECT_EQ(completion, c["completion_ids"].get<std::vector<int32_t>>()) << name;
}

void run_fixture(const std::string& folder, bool tower) {
  const std::filesystem::path dir = testing::golden_dir() / folder;
  const std::filesystem::path expected = testing::golden_dir() / (folder + "_expected");
  if (!std::filesystem::exists(dir / "config.json") || !std::filesystem::exists(expected / "cases.json")) {
    GTEST_SKIP() << "fixture tests/golden/models/" << folder
                 << "{,_expected} is absent (tools/reference/make_tiny_qwen3vl.py makes it)";
  }
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  backend::cpu::CpuBackend backend;
  const std::unique_ptr<Model> model = load_model(snapshot, backend);
  const json cases = json::parse(std::ifstream(expected / "cases.json"));
  if (tower) {
    bool any_image = false;
    for (const json& c : cases["cases"]) any_image = any_image || c["num_images"].get<int>() > 0;
    if (!any_image) GTEST_SKIP() << folder << " has no image cases";
    try {
      (void)model->encode_image({});
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kUnsupported) GTEST_SKIP() << e.what();
    }
  }
  for (const json& c : cases["cases"]) {
    if (tower && c["num_images"].get<int>() == 0) continue;
    run_case(*model, expected, c, 0, tower);
    run_case(*model, expected, c, kChunk, tower);
  }
}

TEST(Qwen3VLGolden, DenseDecoderWithDeepStack) {
  run_fixture("tiny_qwen3vl", false);
}
TEST(Qwen3VLGolden, MoeDecoder) {
  run_fixture("tiny_qwen3vl_moe", false);
}
TEST(Qwen3VLGolden, TextOnlyQwen3) {
  run_fixture("tiny_qwen3", false);
}
TEST(Qwen3VLGolden, Affine4Copy) {
  run_fixture("tiny_qwen3vl_affine4", false);
}
TEST(Qwen3VLGolden, Mxfp4Copy) {
  run_fixture("tiny_qwen3vl_mxfp4", false);
}
TEST(Qwen3VLGolden, DenseThroughTheVisionTower) {
  run_fixture("tiny_qwen3vl", true);
}
TEST(Qwen3VLGolden, MoeThroughTheVisionTower) {
  run_fixture("tiny_qwen3vl_moe", true);
}

}  // namespace
}  // namespace loom::model
