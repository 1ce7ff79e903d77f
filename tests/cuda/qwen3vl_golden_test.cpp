// Qwen3, Qwen3-VL and Qwen3-VL-MoE on the CUDA backend against Hugging Face transformers: the tiny snapshots and
// expected outputs of tests/golden/models/tiny_{qwen3vl,qwen3vl_moe,qwen3}{,_expected}
// (tools/reference/make_tiny_qwen3vl.py), the cases of tests/model/qwen3vl_golden_test.cpp on the CPU: M-RoPE
// positions from transformers' get_rope_index, image rows (merger + DeepStack columns) from the reference vision
// tower's output, handed over in host memory and copied in by the model, the MoE router's logits read back to the
// host for the top-k choice. Weights are uploaded at load, activations and the KV cache stay on the GPU.
//
// Per case, whole and in chunks of 7 that split images: every prompt position's logits must match within 1e-3 by
// max|a − b| / max|b| (the CPU bound is 1e-4; the GPU computes in fp32 too but sums in another order through cuBLAS
// and its reductions, so the bound is the Gemma 3 CUDA test's: rounding with margin, while a wrong row, position or
// missing DeepStack add moves the metric by order 1). Then greedy decoding through the paged cache at position
// index + rope_delta on every axis: ids equal to the reference's, top-5 logprobs within 2e-2. The VL snapshots run
// once more with the image rows from the GPU model's own encode_image on the case's pixels (the vision tower on the
// GPU; its features are brought back to the host only to be fed in like the reference's).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "cuda/golden_checks.h"
#include "model/model_test_util.h"
#include "model/mrope_runner.h"
#include "model/registry.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

constexpr double kLogitTolerance = 1e-3;
constexpr double kLogprobTolerance = 2e-2;
constexpr int64_t kChunk = 7;

// Image features of a case: the reference tower's output, or the GPU model's from the case's pixels.
std::vector<float> case_features(Model& model, const std::filesystem::path& expected, const json& c, bool tower) {
  if (c["num_images"].get<int>() == 0) return {};
  if (!tower) return testing::read_f32_file(expected / c["features_file"].get<std::string>());
  const std::vector<float> pixels = testing::read_f32_file(expected / c["pixels_file"].get<std::string>());
  const auto grids = c["grids"].get<std::vector<std::vector<int64_t>>>();
  int64_t total_rows = 0;
  for (const auto& g : grids) total_rows += g[0] * g[1] * g[2];
  const int64_t row_width = static_cast<int64_t>(pixels.size()) / total_rows;
  std::vector<float> features;
  int64_t row = 0;
  for (const auto& g : grids) {
    const int64_t rows = g[0] * g[1] * g[2];
    ImagePixels image;
    image.pixel_values = Tensor::zeros(DType::kF32, {rows, row_width});
    std::copy_n(pixels.data() + row * row_width, rows * row_width, image.pixel_values.data_as<float>());
    std::copy(g.begin(), g.end(), image.grid_thw);
    image.soft_tokens = rows / 4;
    const Tensor e = model.encode_image(image);
    EXPECT_EQ(e.device().kind, DeviceKind::kCuda);
    const Tensor host = model.backend()->to_host(e);
    features.insert(features.end(), host.data_as<float>(), host.data_as<float>() + host.elements());
    row += rows;
  }
  return features;
}

void run_case(Model& model, const std::filesystem::path& expected, const json& c, int64_t chunk, bool tower) {
  const int64_t vocab = model.info().vocab_size;
  const int axes = model.info().position_axes;
  const std::string name =
      c["name"].get<std::string>() + (chunk > 0 ? " (chunked)" : " (whole)") + (tower ? " through our tower" : "");
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

  testing::MropeRunner runner(model, n + static_cast<int64_t>(c["steps"].size()));
  std::vector<float> last;
  for (int64_t begin = 0; begin < n;) {
    const int64_t end = chunk > 0 ? std::min(n, begin + chunk) : n;
    std::vector<std::vector<int32_t>> pos;
    for (const auto& axis : positions) pos.emplace_back(axis.begin() + begin, axis.begin() + end);
    const Tensor logits = runner.step({prompt.begin() + begin, prompt.begin() + end}, pos, features, image_rows, true);
    ASSERT_EQ(logits.shape(), (Shape{end - begin, vocab})) << name;
    last = testing::expect_prefill_logits(logits, want, begin, vocab, kLogitTolerance, name);
    begin = end;
  }
  testing::expect_greedy(
      last, c, vocab, kLogprobTolerance,
      [&](int32_t id, size_t k) {
        const auto index = static_cast<int32_t>(n + static_cast<int64_t>(k));
        const std::vector<std::vector<int32_t>> pos(static_cast<size_t>(axes), {index + delta});
        return runner.step({id}, pos, features, image_rows, false);
      },
      name);
}

class Qwen3CudaGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(Qwen3CudaGolden, PromptsWholeAndChunkedMatchTransformers) {
  if (backend::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  const std::string folder = GetParam();
  const std::filesystem::path dir = testing::golden_dir() / folder;
  const std::filesystem::path expected = testing::golden_dir() / (folder + "_expected");
  if (!std::filesystem::exists(dir / "config.json") || !std::filesystem::exists(expected / "cases.json")) {
    GTEST_SKIP() << "fixture " << dir << " absent: run tools/reference/make_tiny_qwen3vl.py";
  }
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  backend::cuda::CudaBackend gpu(0);
  const std::unique_ptr<Model> model = load_model(snapshot, gpu);
  ASSERT_EQ(model->backend(), &gpu);
  const json cases = json::parse(std::ifstream(expected / "cases.json"));
  for (const json& c : cases["cases"]) {
    run_case(*model, expected, c, 0, false);
    run_case(*model, expected, c, kChunk, false);
  }
  // The same image cases through the GPU vision tower, where the snapshot has one.
  if (model->info().image_token_id < 0) return;
  try {
    (void)model->encode_image({});
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kUnsupported) return;
  }
  for (const json& c : cases["cases"]) {
    if (c["num_images"].get<int>() == 0) continue;
    run_case(*model, expected, c, 0, true);
    run_case(*model, expected, c, kChunk, true);
  }
}

INSTANTIATE_TEST_SUITE_P(Snapshots, Qwen3CudaGolden,
                         ::testing::Values("tiny_qwen3vl", "tiny_qwen3vl_moe", "tiny_qwen3"));

}  // namespace
}  // namespace loom::model
