// Synthetic models: the presets have the parameter counts Hugging Face publishes for google/gemma-3-*-it (an
// independent reference for the config numbers), every format builds a tiny model that loads through load_model and
// produces finite logits, random weights decode to the documented range, and bad names are refused clearly.

#include "model/synthetic.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "model/registry.h"
#include "model/weight_loader.h"
#include "model_test_util.h"
#include "weights/quant/quantize.h"

namespace loom::model {
namespace {

// Every logit finite and not all the same: the random weights carry information through every layer.
void expect_finite_and_varied(const Tensor& logits) {
  float lo = INFINITY, hi = -INFINITY;
  for (float v : logits.span<const float>()) {
    ASSERT_TRUE(std::isfinite(v));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GT(hi - lo, 1e-3f);
}

using ::testing::HasSubstr;

TEST(Synthetic, PresetsHaveThePublishedParameterCounts) {
  // Model cards / safetensors metadata of the released checkpoints.
  EXPECT_EQ(synthetic_parameters("gemma3-270m"), 268'098'176);
  EXPECT_EQ(synthetic_parameters("gemma3-1b"), 999'885'952);
  EXPECT_EQ(synthetic_parameters("gemma3-4b"), 4'300'079'472);
  EXPECT_EQ(synthetic_parameters("gemma3-12b"), 12'187'325'040);
}

// The Gemma 4 presets against a count written from the architecture (models.md §2 and the published configs), not
// from the manifest code: per-layer embeddings, KV-shared layers without k/v projections, full layers with head_dim
// 512 (31B: 4 KV heads and no v_proj), 1-element layer_scalar buffers, clipped-linear bounds (4 scalars per linear).
TEST(Synthetic, Gemma4PresetsMatchAnIndependentCount) {
  const int64_t vocab = 262144;
  {
    const int64_t h = 2560, layers = 42, ple = 256, inter = 10240, heads = 8, kv = 2, first_shared = 42 - 18;
    int64_t text = vocab * h + vocab * layers * ple + layers * ple * h + ple + h;
    for (int64_t i = 0; i < layers; ++i) {
      const int64_t d = i % 6 == 5 ? 512 : 256;
      text += 4 * h + 2 * heads * d * h + d + 3 * inter * h + 2 * ple * h + h + 1;
      if (i < first_shared) text += 2 * kv * d * h + d;
    }
    const int64_t vh = 768, vi = 3072, vision_layers = 16, vd = 64;
    const int64_t vision = vh * 3 * 16 * 16 + 2 * 10240 * vh +
                           vision_layers * (4 * vh + 4 * vh * vh + 3 * vi * vh + 2 * vd + 7 * 4) + h * vh;
    EXPECT_EQ(synthetic_parameters("gemma4-e4b"), text + vision);
    // The model card's "8B with embeddings" includes the ~0.3B audio tower, which loom does not build.
    EXPECT_NEAR(static_cast<double>(text + vision), 7.63e9, 0.01e9);
  }
  {
    const int64_t h = 5376, layers = 60, inter = 21504, heads = 32;
    int64_t text = vocab * h + h;
    for (int64_t i = 0; i < layers; ++i) {
      const bool full = i % 6 == 5;
      const int64_t d = full ? 512 : 256;
      const int64_t kv_rows = full ? 4 * 512 : 2 * 16 * 256;  // full layers: keys only (attention_k_eq_v)
      text += 4 * h + 2 * heads * d * h + 2 * d + kv_rows * h + 3 * inter * h + 1;
    }
    const int64_t vh = 1152, vi = 4304, vision_layers = 27, vd = 72;
    const int64_t vision = vh * 3 * 16 * 16 + 2 * 10240 * vh +
                           vision_layers * (4 * vh + 4 * vh * vh + 3 * vi * vh + 2 * vd) + 2 * vh + h * vh;
    EXPECT_EQ(synthetic_parameters("gemma4-31b"), text + vision);
    EXPECT_NEAR(static_cast<double>(text), 30.7e9, 0.05e9);  // the published text parameter count
  }
}

TEST(Synthetic, FormatsParseToTheirSpecs) {
  EXPECT_EQ(parse_synthetic_format("f16").float_dtype, DType::kF16);
  EXPECT_EQ(parse_synthetic_format("bf16").quant.mode, weights::QuantMode::kNone);
  EXPECT_EQ(parse_synthetic_format("affine-4").quant, (weights::QuantSpec{weights::QuantMode::kAffine, 4, 64}));
  EXPECT_EQ(parse_synthetic_format("affine-3/g128").quant, (weights::QuantSpec{weights::QuantMode::kAffine, 3, 128}));
  EXPECT_EQ(parse_synthetic_format("nvfp4").quant, (weights::QuantSpec{weights::QuantMode::kNvfp4, 4, 16}));
  for (const char* bad : {"int4", "affine-7", "affine-4/g48", "affine-", "affine-4/g", "mxfp4/g64", ""}) {
    try {
      parse_synthetic_format(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest) << bad;
      EXPECT_THAT(e.what(), HasSubstr("'" + std::string(bad) + "'"));
    }
  }
}

TEST(Synthetic, UnknownPresetListsTheKnownOnes) {
  try {
    synthetic_config("gemma3-2b");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    EXPECT_THAT(e.what(), HasSubstr("gemma3-2b"));
    EXPECT_THAT(e.what(), HasSubstr("gemma3-1b"));
  }
}

class SyntheticFormats : public ::testing::TestWithParam<const char*> {};

TEST_P(SyntheticFormats, TinyLoadsAndGivesFiniteLogits) {
  const SyntheticFormat format = parse_synthetic_format(GetParam());
  const weights::Snapshot snapshot = synthetic_snapshot("tiny", format, 7);
  // The same seed gives the same bytes; another seed different ones.
  const weights::Snapshot again = synthetic_snapshot("tiny", format, 7);
  const weights::Snapshot other = synthetic_snapshot("tiny", format, 8);
  const std::string probe = "model.language_model.layers.1.mlp.down_proj.weight";
  const auto bytes = snapshot.at(probe).file->bytes(snapshot.at(probe).info->name);
  const auto same = again.at(probe).file->bytes(again.at(probe).info->name);
  const auto different = other.at(probe).file->bytes(other.at(probe).info->name);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), same.begin(), same.end()));
  EXPECT_FALSE(std::equal(bytes.begin(), bytes.end(), different.begin(), different.end()));

  // Every decoded weight lies within the ±1/sqrt(fan-in) range the scales were chosen for (with the scale jitter of
  // up to ×1.25 and the formats' rounding), and its spread is that of a uniform distribution, not a constant.
  const WeightLoader loader(snapshot);
  const weights::Weight w = loader.matrix("model.language_model.layers.1.mlp.down_proj", 128, 256);
  std::vector<float> values(static_cast<size_t>(w.rows * w.cols));
  weights::quant::dequantize_rows(w, 0, w.rows, values.data());
  const double amplitude = 1.0 / std::sqrt(256.0);
  double sum2 = 0;
  for (float v : values) {
    ASSERT_TRUE(std::isfinite(v));
    EXPECT_LE(std::abs(v), 1.3 * amplitude + 1e-6);
    sum2 += double{v} * v;
  }
  const double rms = std::sqrt(sum2 / static_cast<double>(values.size()));
  EXPECT_GT(rms, 0.1 * amplitude);
  EXPECT_LT(rms, 0.9 * amplitude);

  backend::cpu::CpuBackend cpu;
  auto model = load_model(snapshot, cpu);
  EXPECT_EQ(model->info().vocab_size, 1024);
  const std::vector<int32_t> prompt = {2, 17, 300, 45, 999, 5};
  backend::KvCache cache({.layers = model->info().kv, .blocks = 4});
  std::vector<int32_t> table;
  cache.reserve(table, 16);
  backend::Batch batch;
  batch.sequences.push_back({.token_offset = 0, .token_count = 6, .kv_start = 0, .block_table = table});
  batch.token_ids = prompt;
  batch.positions = {0, 1, 2, 3, 4, 5};
  const Tensor logits = model->forward({.batch = &batch}, cache);
  ASSERT_EQ(logits.shape(), (Shape{1, 1024}));
  expect_finite_and_varied(logits);

  ImagePixels image;
  image.pixel_values = Tensor::zeros(DType::kF32, {1, 3, 32, 32});
  for (int64_t i = 0; i < image.pixel_values.elements(); ++i) {
    image.pixel_values.data_as<float>()[i] = static_cast<float>(i % 13) / 6.0f - 1.0f;
  }
  const Tensor embeddings = model->encode_image(image);
  ASSERT_EQ(embeddings.shape(), (Shape{4, 128}));
  for (float v : embeddings.span<float>()) ASSERT_TRUE(std::isfinite(v));
}

INSTANTIATE_TEST_SUITE_P(All, SyntheticFormats,
                         ::testing::Values("f32", "f16", "bf16", "affine-2/g32", "affine-3/g64", "affine-4",
                                           "affine-5/g128", "affine-6", "affine-8/g32", "mxfp4", "mxfp8", "nvfp4"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

}  // namespace
}  // namespace loom::model

namespace loom::model {
namespace {

// The tiny Gemma 4 preset has every tensor kind of gemma4-e4b / gemma4-31b: if it loads through the Gemma 4 family
// in a float and a quantized format and runs text and an image, the big presets' manifests do too.
class SyntheticGemma4Formats : public ::testing::TestWithParam<const char*> {};

TEST_P(SyntheticGemma4Formats, TinyGemma4LoadsAndRunsTextAndAnImage) {
  const weights::Snapshot snapshot = synthetic_snapshot("tiny-gemma4", parse_synthetic_format(GetParam()), 3);
  backend::cpu::CpuBackend cpu;
  auto model = load_model(snapshot, cpu);
  const ModelInfo& info = model->info();
  EXPECT_EQ(info.architecture, "Gemma4ForConditionalGeneration");
  EXPECT_EQ(info.vocab_size, 1024);
  EXPECT_EQ(info.image_token_id, 1018);
  EXPECT_TRUE(info.bidirectional_images);
  // 12 layers, the last 4 share K/V: 8 cache layers, the full one (layer 5) with 1 KV head of 64.
  ASSERT_EQ(info.kv.size(), 8u);
  EXPECT_EQ(info.kv[5].kv_heads, 1);
  EXPECT_EQ(info.kv[5].head_dim, 64);
  EXPECT_EQ(info.kv[0].kv_heads, 2);
  EXPECT_EQ(info.kv[0].head_dim, 32);

  backend::KvCache cache({.layers = info.kv, .blocks = 4});
  std::vector<int32_t> table;
  cache.reserve(table, 16);
  backend::Batch batch;
  batch.sequences.push_back({.token_offset = 0, .token_count = 5, .kv_start = 0, .block_table = table});
  batch.token_ids = {2, 17, 300, 45, 999};
  batch.positions = {0, 1, 2, 3, 4};
  const Tensor logits = model->forward({.batch = &batch}, cache);
  ASSERT_EQ(logits.shape(), (Shape{1, 1024}));
  expect_finite_and_varied(logits);

  // A 6 × 3 grid of 16 px patches pools (3 × 3) into 2 soft tokens.
  ImagePixels image;
  image.pixel_values = Tensor::zeros(DType::kF32, {18, 768});
  for (int64_t i = 0; i < image.pixel_values.elements(); ++i) {
    image.pixel_values.data_as<float>()[i] = static_cast<float>(i % 11) / 10.0f;
  }
  image.position_ids = Tensor::zeros(DType::kI64, {18, 2});
  for (int64_t p = 0; p < 18; ++p) {
    image.position_ids.data_as<int64_t>()[2 * p] = p % 6;
    image.position_ids.data_as<int64_t>()[2 * p + 1] = p / 6;
  }
  image.soft_tokens = 2;
  const Tensor embeddings = model->encode_image(image);
  ASSERT_EQ(embeddings.shape(), (Shape{2, 128}));
  for (float v : embeddings.span<float>()) ASSERT_TRUE(std::isfinite(v));
}

INSTANTIATE_TEST_SUITE_P(Formats, SyntheticGemma4Formats, ::testing::Values("bf16", "affine-4", "mxfp4", "nvfp4"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(SyntheticSave, WritesASnapshotThatLoadsBack) {
  const testing::ScratchDir scratch;
  const auto dir = scratch.path() / "tiny";
  const weights::Snapshot built = synthetic_snapshot("tiny", parse_synthetic_format("bf16"), 5);
  save_snapshot(built, dir);
  const weights::Snapshot saved = weights::Snapshot::open(dir);
  EXPECT_EQ(saved.config(), built.config());
  ASSERT_EQ(saved.tensor_names().size(), built.tensor_names().size());
  for (const std::string& name : built.tensor_names()) {
    const auto a = built.at(name), b = saved.at(name);
    EXPECT_EQ(a.info->dtype, b.info->dtype) << name;
    EXPECT_EQ(a.info->shape, b.info->shape) << name;
    const auto x = a.file->bytes(a.info->name), y = b.file->bytes(b.info->name);
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << name;
  }
  backend::cpu::CpuBackend cpu;
  EXPECT_EQ(load_model(saved, cpu)->info().vocab_size, 1024);
  // A second save into the now non-empty folder is refused.
  try {
    save_snapshot(built, dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    EXPECT_THAT(e.what(), HasSubstr("not an empty folder"));
  }
}

}  // namespace
}  // namespace loom::model
