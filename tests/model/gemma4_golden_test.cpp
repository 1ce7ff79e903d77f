// Gemma 4 against Hugging Face transformers (float32, on the bf16-rounded weights of the tiny snapshots):
// tests/golden/models/tiny_gemma4_{e2b,moe}{,_expected}, made by tools/reference/make_tiny_gemma4.py.
//
// Per case: the prompt runs through forward() with all_logits (whole, and in chunks of about 7 tokens that never
// split an image), each image's pixels and patch positions go through encode_image and are scattered at its
// image-token rows, image runs are passed as bidirectional spans (the model decides per layer what they mean).
// Logits at every prompt position must match within 1e-4 by the per-row metric max|a − b| / max|b|; then 16 greedy
// tokens are decoded one at a time through the KV cache: ids must equal the reference's and its top-5 logprobs must
// match ours for the same ids within 1e-3.
//
// Quantized: the same snapshot quantized by loom's quantizer (affine-4/g64, affine-8, mxfp4, mxfp8, nvfp4) must give
// the logits of loom on the float snapshot holding the dequantized weights (decoded by loom's dequantizers, whose
// bit-exactness against MLX is tested in the weights room). Together with the float comparison above this checks the
// quantized path end to end without a second transformers run per format.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "gemma4_test_util.h"
#include "model/registry.h"
#include "model_test_util.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;
using testing::PromptImage;
using testing::SequenceRunner;

constexpr double kLogitTolerance = 1e-4;
constexpr double kLogprobTolerance = 1e-3;

struct Fixture {
  explicit Fixture(const std::string& name)
      : dir(testing::golden_dir() / name), expected(testing::golden_dir() / (name + "_expected")) {}
  bool present() const { return std::filesystem::exists(dir / "config.json") && std::filesystem::exists(expected); }
  void load() {
    if (model) return;
    snapshot.emplace(weights::Snapshot::open(dir));
    model = load_model(*snapshot, backend);
    cases = json::parse(std::ifstream(expected / "cases.json"));
  }
  std::filesystem::path dir, expected;
  std::optional<weights::Snapshot> snapshot;
  backend::cpu::CpuBackend backend;
  std::unique_ptr<Model> model;
  json cases;
};

Fixture& fixture(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Fixture>> fixtures;
  auto& f = fixtures[name];
  if (!f) f = std::make_unique<Fixture>(name);
  return *f;
}

#define LOAD_OR_SKIP(f)                                                                                              \
  do {                                                                                                               \
    if (!(f).present()) GTEST_SKIP() << "fixture " << (f).dir << " absent: run tools/reference/make_tiny_gemma4.py"; \
    (f).load();                                                                                                      \
  } while (0)

// Each run of image tokens is one image; its pixels and positions are image k of the case.
std::vector<PromptImage> encode_images(Model& model, const json& c, const std::filesystem::path& expected,
                                       int64_t patch_dim) {
  std::vector<PromptImage> images;
  const std::vector<int> mask = c["image_token_mask"].get<std::vector<int>>();
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] != 1 || (i > 0 && mask[i - 1] == 1)) continue;
    size_t end = i;
    while (end < mask.size() && mask[end] == 1) ++end;
    const json& spec = c["images"][images.size()];
    ImagePixels image = testing::read_gemma4_image(expected, spec, patch_dim);
    EXPECT_EQ(image.soft_tokens, static_cast<int64_t>(end - i));
    images.push_back({static_cast<int64_t>(i), static_cast<int64_t>(end), model.encode_image(image)});
  }
  EXPECT_EQ(images.size(), c["images"].size());
  return images;
}

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

int32_t argmax(const float* row, int64_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

void run_case(Fixture& f, const json& c, int64_t chunk) {
  Model& model = *f.model;
  const int64_t vocab = model.info().vocab_size;
  const std::string name = c["name"].get<std::string>() + (chunk > 0 ? " (chunked)" : " (whole)");
  const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto length = static_cast<int64_t>(prompt.size());
  const std::vector<float> expected = testing::read_f32_file(f.expected / c["logits_file"].get<std::string>());
  ASSERT_EQ(static_cast<int64_t>(expected.size()), length * vocab) << name;
  const std::vector<PromptImage> images = encode_images(model, c, f.expected, f.cases["patch_dim"].get<int64_t>());

  const json& steps = c["steps"];
  SequenceRunner runner(model, length + static_cast<int64_t>(steps.size()));
  std::vector<float> last_logits;
  int64_t begin = 0;
  for (int64_t end : chunk_ends(length, chunk > 0 ? chunk : length, images)) {
    const Tensor logits = runner.step({prompt.begin() + begin, prompt.begin() + end}, images, true);
    ASSERT_EQ(logits.shape(), (Shape{end - begin, vocab})) << name;
    for (int64_t r = 0; r < end - begin; ++r) {
      const double error = testing::row_relative_error(logits.data_as<float>() + r * vocab,
                                                       expected.data() + (begin + r) * vocab, vocab);
      EXPECT_LE(error, kLogitTolerance) << name << " position " << begin + r;
    }
    last_logits.assign(logits.data_as<float>() + (end - begin - 1) * vocab,
                       logits.data_as<float>() + (end - begin) * vocab);
    begin = end;
  }
  std::vector<int32_t> completion;
  for (size_t k = 0; k < steps.size(); ++k) {
    const std::string where = name + " step " + std::to_string(k);
    const std::vector<double> lp = testing::log_softmax(last_logits.data(), vocab);
    for (const json& entry : steps[k]["top"]) {
      const int id = entry[0].get<int>();
      EXPECT_NEAR(lp[static_cast<size_t>(id)], entry[1].get<double>(), kLogprobTolerance) << where << " id " << id;
    }
    completion.push_back(argmax(last_logits.data(), vocab));
    if (k + 1 == steps.size()) break;
    const Tensor logits = runner.step({completion.back()}, images, false);
    ASSERT_EQ(logits.shape(), (Shape{1, vocab})) << where;
    last_logits.assign(logits.data_as<float>(), logits.data_as<float>() + vocab);
  }
  EXPECT_EQ(completion, c["completion_ids"].get<std::vector<int32_t>>()) << name;
}

void run_cases(Fixture& f, bool with_images, int64_t chunk) {
  for (const json& c : f.cases["cases"]) {
    if (c["images"].empty() != !with_images) continue;
    run_case(f, c, chunk);
  }
}

class Gemma4Golden : public ::testing::TestWithParam<const char*> {};

TEST_P(Gemma4Golden, ModelInfo) {
  Fixture& f = fixture(GetParam());
  LOAD_OR_SKIP(f);
  const ModelInfo& info = f.model->info();
  EXPECT_EQ(info.architecture, "Gemma4ForConditionalGeneration");
  EXPECT_EQ(info.vocab_size, 512);
  EXPECT_EQ(info.hidden_size, 64);
  EXPECT_EQ(info.stop_ids, (std::vector<int32_t>{1, 106, 50}));
  EXPECT_EQ(info.image_token_id, 502);
  if (std::string(GetParam()) == "tiny_gemma4_e2b") {
    // 8 layers, the last 4 share: 4 cache layers [s, s, f, s] with head dims 16 / 32 and one KV head.
    ASSERT_EQ(info.kv.size(), 4u);
    EXPECT_EQ(info.kv[2].head_dim, 32);
    EXPECT_EQ(info.kv[3].head_dim, 16);
    EXPECT_FALSE(info.bidirectional_images);
  } else {
    ASSERT_EQ(info.kv.size(), 5u);
    EXPECT_EQ(info.kv[2].kv_heads, 1);  // num_global_key_value_heads on the k_eq_v full layers
    EXPECT_EQ(info.kv[2].head_dim, 32);
    EXPECT_EQ(info.kv[0].kv_heads, 2);
    EXPECT_TRUE(info.bidirectional_images);
  }
}

TEST_P(Gemma4Golden, TextPromptsWholeAndChunked) {
  Fixture& f = fixture(GetParam());
  LOAD_OR_SKIP(f);
  run_cases(f, false, 0);
  run_cases(f, false, 7);
}

TEST_P(Gemma4Golden, ImagePromptsWholeAndChunked) {
  Fixture& f = fixture(GetParam());
  LOAD_OR_SKIP(f);
  if (!testing::gemma4_can_encode_images(*f.model)) GTEST_SKIP() << "this build has no Gemma 4 vision tower";
  run_cases(f, true, 0);
  run_cases(f, true, 7);
}

// loom on a quantized copy against loom on the float snapshot of its dequantized weights: prompt logits within
// 1e-4 and identical greedy continuations (text cases; the vision tower stays float under quantization anyway).
TEST_P(Gemma4Golden, QuantizedMatchesDequantizedFloat) {
  Fixture& f = fixture(GetParam());
  LOAD_OR_SKIP(f);
  for (const char* mode : {"affine-4", "affine-8", "mxfp4", "mxfp8", "nvfp4"}) {
    testing::ScratchDir dir;
    const testing::QuantizedPair pair = testing::quantize_and_dequantize(f.dir, dir.path(), mode);
    backend::cpu::CpuBackend backend;
    const std::unique_ptr<Model> quantized = load_model(weights::Snapshot::open(pair.quantized), backend);
    const std::unique_ptr<Model> dequantized = load_model(weights::Snapshot::open(pair.dequantized), backend);
    for (const json& c : f.cases["cases"]) {
      if (!c["images"].empty()) continue;
      testing::expect_same_run(*quantized, *dequantized, c["prompt_ids"].get<std::vector<int32_t>>(), 16,
                               kLogitTolerance, std::string(mode) + " " + c["name"].get<std::string>());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Snapshots, Gemma4Golden, ::testing::Values("tiny_gemma4_e2b", "tiny_gemma4_moe"));

}  // namespace
}  // namespace loom::model
