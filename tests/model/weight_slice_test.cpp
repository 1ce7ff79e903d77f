// Tensor-parallel weight slices: every storage format's row and column slice must dequantize to exactly the slice of
// the dequantized whole (weights::quant::dequantize_rows is the decoder, tested bit-exact against MLX in the weights
// room). On the committed quantized fixtures (real `loom quantize` output) through the WeightLoader, and on random
// weights quantized here in every format (affine 3-bit too, whose codes straddle bytes). Cuts inside a group are
// refused, naming the tensor, the split and the group size.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/tensor_parallel.h"
#include "model/weight_loader.h"
#include "model_test_util.h"
#include "weights/quant/quantize.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

std::vector<float> dequantized(const weights::Weight& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  weights::quant::dequantize_rows(w, 0, w.rows, out.data());
  return out;
}

// Element (r, c) of the whole's decode for the slice's (i, j), or 0 for padded rows.
void expect_slice_of(const weights::Weight& whole, const weights::Weight& slice, int64_t row_begin, int64_t col_begin,
                     const std::string& what) {
  weights::quant::validate(slice, what);
  const std::vector<float> all = dequantized(whole), part = dequantized(slice);
  int mismatches = 0;
  for (int64_t i = 0; i < slice.rows; ++i) {
    for (int64_t j = 0; j < slice.cols; ++j) {
      const int64_t r = row_begin + i, c = col_begin + j;
      const float want = r < whole.rows ? all[static_cast<size_t>(r * whole.cols + c)] : 0.0f;
      mismatches += part[static_cast<size_t>(i * slice.cols + j)] != want;
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

class FixtureSlices : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureSlices, RowAndColumnSlicesDecodeToSlicesOfTheWhole) {
  const std::string name = GetParam();
  const auto dir = testing::golden_dir() / name;
  if (!std::filesystem::exists(dir / "config.json")) GTEST_SKIP() << "fixture " << dir << " is absent";
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  const WeightLoader loader(snapshot);
  const std::string layer = "model.language_model.layers.1.";
  // down_proj [64, 128]: column halves are whole groups for every MLX format (64 = one affine group of 64).
  const std::string down = layer + "mlp.down_proj";
  const weights::Weight whole = loader.matrix(down, 64, 128);
  for (const int64_t begin : {0, 64}) {
    expect_slice_of(whole, loader.matrix_cols(down, 64, 128, begin, 64), 0, begin,
                    name + " " + down + " columns from " + std::to_string(begin));
  }
  // gate_proj [128, 64]: rows of a column-parallel shard, and a vocab-style shard running past the end (zero rows).
  const std::string gate = layer + "mlp.gate_proj";
  const weights::Weight gate_whole = loader.matrix(gate, 128, 64);
  expect_slice_of(gate_whole, loader.matrix_rows(gate, 128, 64, 32, 32), 32, 0, name + " " + gate + " rows 32..64");
  expect_slice_of(gate_whole, loader.matrix_rows(gate, 128, 64, 96, 48), 96, 0, name + " " + gate + " padded rows");
  // Embedding rows (the vocab shard of rank 1 of 2).
  const std::string embed = "model.language_model.embed_tokens";
  expect_slice_of(loader.matrix(embed, 512, 64), loader.matrix_rows(embed, 512, 64, 256, 256), 256, 0,
                  name + " embedding vocab shard");
  // F32 vector slice.
  const std::string norm = layer + "input_layernorm.weight";
  const Tensor all = loader.f32(norm, {64});
  const Tensor part = loader.f32_slice(norm, 64, 16, 32);
  for (int64_t i = 0; i < 32; ++i) EXPECT_EQ(part.data_as<float>()[i], all.data_as<float>()[16 + i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Formats, FixtureSlices,
                         ::testing::Values("tiny_gemma3_vlm", "tiny_gemma3_vlm_affine4", "tiny_gemma3_vlm_affine8",
                                           "tiny_gemma3_vlm_mxfp4", "tiny_gemma3_vlm_mxfp8", "tiny_gemma3_vlm_nvfp4"));

struct SpecCase {
  const char* name;
  weights::QuantSpec spec;
};

class RandomSlices : public ::testing::TestWithParam<SpecCase> {};

TEST_P(RandomSlices, EveryGroupAlignedColumnCutAndAnyRowCut) {
  const SpecCase& c = GetParam();
  const int64_t rows = 12, cols = 4 * 64;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (float& v : values) v = dist(rng);
  const weights::Weight whole = c.spec.mode == weights::QuantMode::kNvfp4
                                    ? weights::quant::quantize_nvfp4(values.data(), rows, cols, 3.0f)
                                    : weights::quant::quantize(values.data(), rows, cols, c.spec);
  const int g = c.spec.group_size;
  for (int64_t begin = 0; begin < cols; begin += g) {
    for (int64_t count = g; begin + count <= cols; count += g) {
      expect_slice_of(whole, weight_cols(whole, begin, count, "w"), 0, begin,
                      std::string(c.name) + " columns " + std::to_string(begin) + "+" + std::to_string(count));
    }
  }
  for (int64_t begin = 0; begin < rows; begin += 5) {
    expect_slice_of(whole, weight_rows(whole, begin, 6, "w"), begin, 0,
                    std::string(c.name) + " rows from " + std::to_string(begin));
  }
}

TEST_P(RandomSlices, CutsInsideAGroupAreRefusedNamingTensorSplitAndGroup) {
  const SpecCase& c = GetParam();
  const int64_t rows = 2, cols = 128;
  std::vector<float> values(static_cast<size_t>(rows * cols), 0.25f);
  const weights::Weight whole = weights::quant::quantize(values.data(), rows, cols, c.spec);
  const int g = c.spec.group_size;
  try {
    (void)weight_cols(whole, g / 2, g, "layers.0.self_attn.o_proj");
    FAIL() << c.name << ": a cut inside a group was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    const std::string message = e.what();
    EXPECT_NE(message.find("layers.0.self_attn.o_proj"), std::string::npos) << message;
    EXPECT_NE(message.find("[" + std::to_string(g / 2) + ", "), std::string::npos) << message;
    EXPECT_NE(message.find("groups of " + std::to_string(g)), std::string::npos) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, RandomSlices,
                         ::testing::Values(SpecCase{"affine3_g32", {weights::QuantMode::kAffine, 3, 32}},
                                           SpecCase{"affine4_g64", {weights::QuantMode::kAffine, 4, 64}},
                                           SpecCase{"affine6_g32", {weights::QuantMode::kAffine, 6, 32}},
                                           SpecCase{"affine8_g64", {weights::QuantMode::kAffine, 8, 64}},
                                           SpecCase{"mxfp4", {weights::QuantMode::kMxfp4, 4, 32}},
                                           SpecCase{"mxfp8", {weights::QuantMode::kMxfp8, 8, 32}},
                                           SpecCase{"nvfp4", {weights::QuantMode::kNvfp4, 4, 16}}),
                         [](const ::testing::TestParamInfo<SpecCase>& info) { return std::string(info.param.name); });

TEST(FloatSlices, ColumnsOfAFloatWeight) {
  const int64_t rows = 3, cols = 10;
  weights::Weight w;
  w.rows = rows;
  w.cols = cols;
  w.values = Tensor::zeros(DType::kF32, {rows, cols});
  for (int64_t i = 0; i < rows * cols; ++i) w.values.data_as<float>()[i] = static_cast<float>(i);
  const weights::Weight part = weight_cols(w, 3, 5, "w");
  ASSERT_EQ(part.values.shape(), (Shape{3, 5}));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < 5; ++c)
      EXPECT_EQ(part.values.data_as<float>()[r * 5 + c], static_cast<float>(r * cols + 3 + c));
  }
  EXPECT_THROW(weight_cols(w, 6, 5, "w"), Error);
}

}  // namespace
}  // namespace loom::model
