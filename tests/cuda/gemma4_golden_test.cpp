// Gemma 4 on the CUDA backend against Hugging Face transformers: the tiny snapshots and expected outputs of
// tests/golden/models/tiny_gemma4_{e2b,moe}{,_expected} (tools/reference/make_tiny_gemma4.py), the cases of
// tests/model/gemma4_golden_test.cpp on the CPU. E2B covers per-layer embeddings, KV sharing, proportional RoPE and
// k_eq_v; the MoE snapshot the expert branch (router probabilities read back to the host for the top-k choice).
// Weights are uploaded at load, activations and the KV cache stay on the GPU, only logits come back.
//
// Image cases: each image's pixels and patch positions go through the GPU model's encode_image (the vision tower and
// embedder on the GPU, embeddings in device memory) and are scattered at its image-token rows, image runs passed as
// bidirectional spans.
//
// Per case, whole and in chunks of about 7 tokens that never split an image: every prompt position's logits must
// match within 1e-3 by max|a − b| / max|b| (the CPU bound is 1e-4; the GPU computes in fp32 too but sums in another
// order through cuBLAS and its reductions, so the bound is the Gemma 3 CUDA test's: fp32 rounding with margin, while a
// real error such as a wrong mask, row or missing branch moves the metric by order 1). Then greedy decoding through
// the paged cache: ids equal to the reference's, top-5 logprobs within 2e-2.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cuda/cuda_backend.h"
#include "cuda/golden_checks.h"
#include "model/gemma4_test_util.h"
#include "model/model_test_util.h"
#include "model/registry.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;
using testing::PromptImage;
using testing::SequenceRunner;

constexpr double kLogitTolerance = 1e-3;
constexpr double kLogprobTolerance = 2e-2;
constexpr int64_t kChunk = 7;

// Each run of image tokens is one image; its embeddings stay in the model's (device) memory.
std::vector<PromptImage> encode_images(Model& model, const json& c, const std::filesystem::path& expected,
                                       int64_t patch_dim) {
  std::vector<PromptImage> images;
  const std::vector<int> mask = c["image_token_mask"].get<std::vector<int>>();
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] != 1 || (i > 0 && mask[i - 1] == 1)) continue;
    size_t end = i;
    while (end < mask.size() && mask[end] == 1) ++end;
    const ImagePixels image = testing::read_gemma4_image(expected, c["images"][images.size()], patch_dim);
    EXPECT_EQ(image.soft_tokens, static_cast<int64_t>(end - i));
    Tensor embeddings = model.encode_image(image);
    EXPECT_EQ(embeddings.device().kind, DeviceKind::kCuda);
    images.push_back({static_cast<int64_t>(i), static_cast<int64_t>(end), std::move(embeddings)});
  }
  EXPECT_EQ(images.size(), c["images"].size());
  return images;
}

// Prefill chunk ends: `chunk` tokens at a time, extended so that no image is split.
std::vector<int64_t> chunk_ends(int64_t length, int64_t chunk, const std::vector<PromptImage>& images) {
  std::vector<int64_t> ends;
  int64_t end = 0;
  while (end < length) {
    end = std::min(length, end + chunk);
    for (const PromptImage& image : images) {
      if (image.start < end && end < image.end) end = image.end;
    }
    ends.push_back(end);
  }
  return ends;
}

void run_case(Model& model, const std::vector<PromptImage>& images, const json& c,
              const std::filesystem::path& expected, int64_t chunk) {
  const int64_t vocab = model.info().vocab_size;
  const std::string name = c["name"].get<std::string>() + (chunk > 0 ? " (chunked)" : " (whole)");
  const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto length = static_cast<int64_t>(prompt.size());
  const std::vector<float> want = testing::read_f32_file(expected / c["logits_file"].get<std::string>());
  ASSERT_EQ(static_cast<int64_t>(want.size()), length * vocab) << name;

  SequenceRunner runner(model, length + static_cast<int64_t>(c["steps"].size()));
  std::vector<float> last;
  int64_t begin = 0;
  for (int64_t end : chunk_ends(length, chunk > 0 ? chunk : length, images)) {
    const Tensor logits = runner.step({prompt.begin() + begin, prompt.begin() + end}, images, true);
    ASSERT_EQ(logits.shape(), (Shape{end - begin, vocab})) << name;
    last = testing::expect_prefill_logits(logits, want, begin, vocab, kLogitTolerance, name);
    begin = end;
  }
  testing::expect_greedy(
      last, c, vocab, kLogprobTolerance, [&](int32_t id, size_t) { return runner.step({id}, images, false); }, name);
}

class Gemma4CudaGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(Gemma4CudaGolden, PromptsWholeAndChunkedMatchTransformers) {
  if (backend::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  const std::string folder = GetParam();
  const std::filesystem::path dir = testing::golden_dir() / folder;
  const std::filesystem::path expected = testing::golden_dir() / (folder + "_expected");
  if (!std::filesystem::exists(dir / "config.json") || !std::filesystem::exists(expected / "cases.json")) {
    GTEST_SKIP() << "fixture " << dir << " absent: run tools/reference/make_tiny_gemma4.py";
  }
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  backend::cuda::CudaBackend gpu(0);
  const std::unique_ptr<Model> model = load_model(snapshot, gpu);
  ASSERT_EQ(model->backend(), &gpu);
  const json cases = json::parse(std::ifstream(expected / "cases.json"));

  const bool tower = testing::gemma4_can_encode_images(*model);
  int image_cases = 0;
  for (const json& c : cases["cases"]) {
    std::vector<PromptImage> images;
    if (!c["images"].empty()) {
      if (!tower) continue;
      images = encode_images(*model, c, expected, cases["patch_dim"].get<int64_t>());
      ++image_cases;
    }
    run_case(*model, images, c, expected, 0);
    run_case(*model, images, c, expected, kChunk);
  }
  if (tower) {
    EXPECT_GT(image_cases, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Snapshots, Gemma4CudaGolden, ::testing::Values("tiny_gemma4_e2b", "tiny_gemma4_moe"));

}  // namespace
}  // namespace loom::model
