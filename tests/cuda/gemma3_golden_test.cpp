// Gemma 3 on the CUDA backend against Hugging Face transformers: the tiny snapshot and expected outputs of
// tests/golden/models/tiny_gemma3_vlm{,_expected} (made by tools/reference/make_tiny_gemma3.py), the same cases as
// tests/model/gemma3_golden_test.cpp on the CPU. Weights are uploaded at load, activations and the KV cache stay on
// the GPU, only logits come back.
//
// Per case: the prompt (images encoded on the GPU and scattered at their rows, bidirectional image spans) runs as one
// prefill; every position's logits must match within 1e-3 by max|a − b| / max|b| (the GPU computes in fp32 like the
// CPU, so this is fp32 rounding with room to spare). Then greedy decoding through the paged cache: the ids must equal
// the reference's and its top-5 logprobs must match ours within 2e-2.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cuda/cuda_backend.h"
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

std::filesystem::path expected_dir() {
  return testing::golden_dir() / "tiny_gemma3_vlm_expected";
}

std::vector<PromptImage> encode_images(Model& model, const json& c, int64_t size) {
  std::vector<PromptImage> images;
  const std::vector<int> types = c["token_type_ids"].get<std::vector<int>>();
  std::vector<float> pixels;
  if (!c["pixels_file"].is_null())
    pixels = testing::read_f32_file(expected_dir() / c["pixels_file"].get<std::string>());
  const int64_t image_elems = 3 * size * size;
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] != 1 || (i > 0 && types[i - 1] == 1)) continue;
    size_t end = i;
    while (end < types.size() && types[end] == 1) ++end;
    const auto k = static_cast<int64_t>(images.size());
    EXPECT_LE((k + 1) * image_elems, static_cast<int64_t>(pixels.size()));
    ImagePixels image;
    image.pixel_values = Tensor::zeros(DType::kF32, {1, 3, size, size});
    std::copy_n(pixels.data() + k * image_elems, image_elems, image.pixel_values.data_as<float>());
    image.soft_tokens = static_cast<int64_t>(end - i);
    Tensor embeddings = model.encode_image(image);
    EXPECT_EQ(embeddings.device().kind, DeviceKind::kCuda);
    images.push_back({static_cast<int64_t>(i), static_cast<int64_t>(end), std::move(embeddings)});
  }
  return images;
}

TEST(Gemma3CudaGolden, PrefillAndGreedyDecodeMatchTransformers) {
  if (backend::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  if (!std::filesystem::exists(expected_dir() / "cases.json")) GTEST_SKIP() << "missing " << expected_dir();
  const auto snapshot = weights::Snapshot::open(testing::golden_dir() / "tiny_gemma3_vlm");
  backend::cuda::CudaBackend gpu(0);
  const std::unique_ptr<Model> model = load_model(snapshot, gpu);
  const json cases = json::parse(std::ifstream(expected_dir() / "cases.json"));
  const int64_t vocab = model->info().vocab_size;
  for (const json& c : cases["cases"]) {
    const std::string name = c["name"].get<std::string>();
    const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto length = static_cast<int64_t>(prompt.size());
    const std::vector<float> expected = testing::read_f32_file(expected_dir() / c["logits_file"].get<std::string>());
    ASSERT_EQ(static_cast<int64_t>(expected.size()), length * vocab) << name;
    const std::vector<PromptImage> images = encode_images(*model, c, cases["image_size"].get<int64_t>());
    const json& steps = c["steps"];
    SequenceRunner runner(*model, length + static_cast<int64_t>(steps.size()));
    Tensor logits = runner.step(prompt, images, true);
    ASSERT_EQ(logits.device().kind, DeviceKind::kCpu) << name;  // forward returns host logits
    ASSERT_EQ(logits.shape(), (Shape{length, vocab})) << name;
    for (int64_t r = 0; r < length; ++r) {
      EXPECT_LE(testing::row_relative_error(logits.data_as<float>() + r * vocab, expected.data() + r * vocab, vocab),
                kLogitTolerance)
          << name << " position " << r;
    }
    std::vector<float> last(logits.data_as<float>() + (length - 1) * vocab, logits.data_as<float>() + length * vocab);
    std::vector<int32_t> completion;
    for (size_t k = 0; k < steps.size(); ++k) {
      const std::vector<double> lp = testing::log_softmax(last.data(), vocab);
      for (const json& entry : steps[k]["top"]) {
        const int id = entry[0].get<int>();
        EXPECT_NEAR(lp[static_cast<size_t>(id)], entry[1].get<double>(), kLogprobTolerance) << name << " step " << k;
      }
      completion.push_back(static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin()));
      if (k + 1 == steps.size()) break;
      logits = runner.step({completion.back()}, images, false);
      ASSERT_EQ(logits.shape(), (Shape{1, vocab})) << name;
      last.assign(logits.data_as<float>(), logits.data_as<float>() + vocab);
    }
    EXPECT_EQ(completion, c["completion_ids"].get<std::vector<int32_t>>()) << name;
  }
}

}  // namespace
}  // namespace loom::model
