// Gemma 3 against Hugging Face transformers (float32, on the bf16-rounded weights of the tiny snapshot):
// tests/golden/models/tiny_gemma3_vlm{,_expected}, made by tools/reference/make_tiny_gemma3.py.
//
// Per case: the prompt runs through forward() with all_logits (whole, and in chunks of about 7 tokens that never
// split an image), image pixels go through encode_image and are scattered at the image-token rows, each image's
// soft tokens attend bidirectionally (the engine's job, done here by SequenceRunner). Logits at every prompt
// position must match within 1e-4 by the per-row metric max|a − b| / max|b|. Then 16 greedy tokens are decoded one
// step at a time through the KV cache: the ids must equal the reference's and the reference's top-5 logprobs must
// match ours for the same ids within 1e-3. The same holds for the copies `loom quantize` makes in every mode
// (tiny_gemma3_vlm_<mode>), run on their quantized storage, against transformers on their dequantized weights.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "golden_prompt.h"
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

// One snapshot and transformers' outputs for it: the bf16 snapshot, or a copy `loom quantize` made of it whose
// expected outputs transformers computed on the copy's dequantized weights (tiny_gemma3_vlm_<mode>).
struct Fixture {
  explicit Fixture(const std::string& name)
      : name(name),
        snapshot(weights::Snapshot::open(testing::golden_dir() / name)),
        model(load_model(snapshot, backend)),
        cases(json::parse(std::ifstream(expected_dir() / "cases.json"))) {}
  std::filesystem::path expected_dir() const { return testing::golden_dir() / (name + "_expected"); }

  std::string name;
  weights::Snapshot snapshot;
  backend::cpu::CpuBackend backend;
  std::unique_ptr<Model> model;
  json cases;
};

Fixture& fixture(const std::string& name = "tiny_gemma3_vlm") {
  static std::map<std::string, std::unique_ptr<Fixture>> fixtures;
  auto& slot = fixtures[name];
  if (!slot) slot = std::make_unique<Fixture>(name);
  return *slot;
}

// Each run of token_type 1 is one image's soft tokens; its pixels are image k of the case's pixel file.
std::vector<PromptImage> encode_images(const Fixture& f, Model& model, const json& c, int64_t size) {
  std::vector<PromptImage> images;
  std::vector<float> pixels;
  if (!c["pixels_file"].is_null()) {
    pixels = testing::read_f32_file(f.expected_dir() / c["pixels_file"].get<std::string>());
  }
  for (const auto& [start, end] : testing::flagged_runs(c["token_type_ids"].get<std::vector<int>>())) {
    const auto k = static_cast<int64_t>(images.size());
    const ImagePixels image = testing::gemma3_image(pixels, k, size, end - start);
    images.push_back({start, end, model.encode_image(image)});
  }
  EXPECT_EQ(static_cast<int64_t>(images.size()), c["num_images"].get<int64_t>());
  return images;
}

// Chunk ends: every `chunk` tokens, pushed past the end of an image a boundary would split.
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

void expect_top5(const float* logits, int64_t vocab, const json& step, const std::string& where) {
  const std::vector<double> lp = testing::log_softmax(logits, vocab);
  for (const json& entry : step["top"]) {
    const int id = entry[0].get<int>();
    EXPECT_NEAR(lp[static_cast<size_t>(id)], entry[1].get<double>(), kLogprobTolerance) << where << " id " << id;
  }
}

int32_t argmax(const float* row, int64_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

void run_case(Fixture& f, const json& c, int64_t chunk) {
  Model& model = *f.model;
  const int64_t vocab = model.info().vocab_size;
  const std::string name = f.name + " " + c["name"].get<std::string>() + (chunk > 0 ? " (chunked)" : " (whole)");
  const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto length = static_cast<int64_t>(prompt.size());
  const std::vector<float> expected = testing::read_f32_file(f.expected_dir() / c["logits_file"].get<std::string>());
  ASSERT_EQ(static_cast<int64_t>(expected.size()), length * vocab) << name;
  const std::vector<PromptImage> images = encode_images(f, model, c, f.cases["image_size"].get<int64_t>());

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

  // Greedy decode: step k's logits choose completion token k; decode steps ask for the last row only.
  std::vector<int32_t> completion;
  for (size_t k = 0; k < steps.size(); ++k) {
    const std::string where = name + " step " + std::to_string(k);
    expect_top5(last_logits.data(), vocab, steps[k], where);
    completion.push_back(argmax(last_logits.data(), vocab));
    if (k + 1 == steps.size()) break;
    const Tensor logits = runner.step({completion.back()}, images, false);
    ASSERT_EQ(logits.shape(), (Shape{1, vocab})) << where;
    last_logits.assign(logits.data_as<float>(), logits.data_as<float>() + vocab);
  }
  EXPECT_EQ(completion, c["completion_ids"].get<std::vector<int32_t>>()) << name;
}

TEST(Gemma3Golden, ModelInfo) {
  const ModelInfo& info = fixture().model->info();
  EXPECT_EQ(info.architecture, "Gemma3ForConditionalGeneration");
  EXPECT_EQ(info.vocab_size, 512);
  EXPECT_EQ(info.hidden_size, 64);
  EXPECT_EQ(info.context_length, 512);
  EXPECT_EQ(info.position_axes, 1);
  ASSERT_EQ(info.kv.size(), 6u);
  for (const backend::KvLayerShape& layer : info.kv) {
    EXPECT_EQ(layer.kv_heads, 2);
    EXPECT_EQ(layer.head_dim, 16);
  }
  EXPECT_EQ(info.stop_ids, (std::vector<int32_t>{1, 106}));
  EXPECT_EQ(info.image_token_id, 502);
  EXPECT_TRUE(info.bidirectional_images);
}

TEST(Gemma3Golden, EncodeImageShape) {
  Fixture& f = fixture();
  ImagePixels image;
  image.pixel_values = Tensor::zeros(DType::kF32, {2, 3, 56, 56});  // an image and one crop
  const Tensor embeddings = f.model->encode_image(image);
  EXPECT_EQ(embeddings.shape(), (Shape{8, 64}));
  image.pixel_values = Tensor::zeros(DType::kF32, {1, 3, 32, 32});
  EXPECT_THROW(f.model->encode_image(image), Error);
}

TEST(Gemma3Golden, WholePrefillAndDecode) {
  for (const json& c : fixture().cases["cases"]) run_case(fixture(), c, 0);
}

TEST(Gemma3Golden, ChunkedPrefillAndDecode) {
  for (const json& c : fixture().cases["cases"]) run_case(fixture(), c, 7);
}

// Copies made by `loom quantize` in every mode, run on their quantized storage, against transformers on the same
// weights dequantized by an independent numpy decoder (tools/reference/make_tiny_gemma3.py --loom).
class Gemma3QuantizedGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(Gemma3QuantizedGolden, PrefillAndDecodeMatchTransformersOnTheDequantizedWeights) {
  const std::string name = "tiny_gemma3_vlm_" + GetParam();
  if (!std::filesystem::exists(testing::golden_dir() / name)) {
    GTEST_SKIP() << "fixture " << name << " is absent: python3 tools/reference/make_tiny_gemma3.py tests/golden/models "
                 << "--loom build/release/loom";
  }
  Fixture& f = fixture(name);
  for (const json& c : f.cases["cases"]) {
    run_case(f, c, 0);
    run_case(f, c, 7);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryMode, Gemma3QuantizedGolden,
                         ::testing::Values("affine4", "affine8", "mxfp4", "mxfp8", "nvfp4"));

}  // namespace
}  // namespace loom::model
