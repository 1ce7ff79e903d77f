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

using ::testing::HasSubstr;

TEST(Synthetic, PresetsHaveThePublishedParameterCounts) {
  // Model cards / safetensors metadata of the released checkpoints.
  EXPECT_EQ(synthetic_parameters("gemma3-270m"), 268'098'176);
  EXPECT_EQ(synthetic_parameters("gemma3-1b"), 999'885'952);
  EXPECT_EQ(synthetic_parameters("gemma3-4b"), 4'300'079'472);
  EXPECT_EQ(synthetic_parameters("gemma3-12b"), 12'187'325'040);
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
  float lo = INFINITY, hi = -INFINITY;
  for (float v : logits.span<float>()) {
    ASSERT_TRUE(std::isfinite(v));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GT(hi - lo, 1e-3f);  // not a constant: the weights carry information through the layers

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
