// Bit packing against a bit-by-bit reference, round-trip error bounds, NaN/Inf refusal and shape validation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "weights/quant/bit_packing.h"
#include "weights/quant/quantize.h"

namespace loom::weights::quant {
namespace {

TEST(QuantPacking, EveryWidthMatchesBitByBitReference) {
  std::mt19937 rng(7);
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    const int64_t count = 32 * 5;
    std::vector<uint8_t> codes(count);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
    // Reference: set stream bit i·b + k from bit k of code i, stream bit n is bit n%32 of word n/32.
    std::vector<uint32_t> expected(static_cast<size_t>(count * bits / 32), 0);
    for (int64_t i = 0; i < count; ++i) {
      for (int k = 0; k < bits; ++k) {
        const int64_t n = i * bits + k;
        if ((codes[static_cast<size_t>(i)] >> k) & 1) expected[static_cast<size_t>(n / 32)] |= 1u << (n % 32);
      }
    }
    std::vector<uint32_t> words(expected.size(), 0xDEADBEEF);
    pack_bits(codes.data(), count, bits, words.data());
    EXPECT_EQ(words, expected) << bits << " bits";
    std::vector<uint8_t> unpacked(static_cast<size_t>(count - 3));
    unpack_bits(words.data(), 3, count - 3, bits, unpacked.data());
    EXPECT_EQ(unpacked, std::vector<uint8_t>(codes.begin() + 3, codes.end())) << bits << " bits";
  }
}

TEST(QuantPacking, ThreeBitCodesCrossBytesAsMlxDescribes) {
  // 8 three-bit values fill 3 bytes: 0b[v2:2..1 v1 v0] ... with values 1..7,0 the bytes are fixed by the layout.
  const uint8_t codes[32] = {1, 2, 3, 4, 5, 6, 7, 0};
  uint32_t words[3] = {};
  pack_bits(codes, 32, 3, words);
  // Stream bits: v0=001 v1=010 v2=011 v3=100 v4=101 v5=110 v6=111 v7=000, LSB first.
  // byte0 = v0 | v1<<3 | (v2&3)<<6 = 1 | 16 | 192 = 0xD1; byte1 = v2>>2 | v3<<1 | v4<<4 | (v5&1)<<7 = 0 | 8 | 80 | 0
  // = 0x58; byte2 = v5>>1 | v6<<2 | v7<<5 = 3 | 28 | 0 = 0x1F.
  EXPECT_EQ(words[0] & 0xFFFFFFu, 0x1F58D1u);
}

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> magnitude(-10.0f, 4.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = std::exp2(magnitude(rng));
    for (int64_t c = 0; c < cols; ++c) w[static_cast<size_t>(r * cols + c)] = normal(rng) * scale;
  }
  return w;
}

TEST(QuantRoundTrip, AffineErrorIsAtMostHalfAStep) {
  const int64_t rows = 16, cols = 256;
  const std::vector<float> w = random_matrix(rows, cols, 11);
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int group : {32, 64, 128}) {
      // F32 scales: the stored grid is exactly the quantizer's, so every value inside the grid's span is within half
      // a step of its dequantization, and values outside it (clamped) are nearest to the end of the grid.
      const Weight q = quantize(w.data(), rows, cols, {QuantMode::kAffine, bits, group}, DType::kF32);
      std::vector<float> d(w.size());
      dequantize_rows(q, 0, rows, d.data());
      const int64_t groups = cols / group;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          const float s = q.scales.data_as<float>()[r * groups + c / group];
          const float b = q.biases.data_as<float>()[r * groups + c / group];
          const float lo = std::min(b, b + s * static_cast<float>((1 << bits) - 1));
          const float hi = std::max(b, b + s * static_cast<float>((1 << bits) - 1));
          const float x = w[static_cast<size_t>(r * cols + c)];
          const float y = d[static_cast<size_t>(r * cols + c)];
          const float slack = 1e-5f * std::max(std::fabs(lo), std::fabs(hi));
          const float bound = (x >= lo && x <= hi) ? std::fabs(s) / 2 : std::max(lo - x, x - hi) + std::fabs(s) / 2;
          ASSERT_LE(std::fabs(x - y), bound + slack) << bits << "-bit group " << group << " row " << r << " col " << c;
        }
      }
    }
  }
}

// The dequantized value must be the nearest of the group's candidates scale·v (v over all codes), up to ties.
void expect_nearest_candidate(const QuantSpec& spec, std::optional<float> global_scale) {
  const int64_t rows = 8, cols = 256;
  const std::vector<float> w = random_matrix(rows, cols, 13);
  const Weight q =
      global_scale ? quantize_nvfp4(w.data(), rows, cols, *global_scale) : quantize(w.data(), rows, cols, spec);
  std::vector<float> d(w.size());
  dequantize_rows(q, 0, rows, d.data());
  const int64_t groups = cols / spec.group_size;
  std::vector<float> codes;
  if (spec.mode == QuantMode::kMxfp8) {
    for (int c = 0; c < 256; ++c) {
      if ((c & 0x7F) != 0x7F) codes.push_back(e4m3_to_float(static_cast<uint8_t>(c)));
    }
  } else {
    for (int c = 0; c < 16; ++c) codes.push_back(e2m1_to_float(static_cast<uint8_t>(c)));
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const uint8_t sb = q.scales.data_as<uint8_t>()[r * groups + c / spec.group_size];
      const float scale = (spec.mode == QuantMode::kNvfp4 ? e4m3_to_float(sb) : e8m0_to_float(sb)) * q.output_scale;
      const float x = w[static_cast<size_t>(r * cols + c)];
      float best = std::numeric_limits<float>::infinity();
      for (float v : codes) best = std::min(best, std::fabs(x - v * scale));
      ASSERT_LE(std::fabs(x - d[static_cast<size_t>(r * cols + c)]), best * (1 + 1e-5f) + 1e-30f)
          << quant_spec_name(spec) << " row " << r << " col " << c;
    }
  }
}

TEST(QuantRoundTrip, FloatModesPickTheNearestValue) {
  expect_nearest_candidate({QuantMode::kMxfp4, 4, 32}, std::nullopt);
  expect_nearest_candidate({QuantMode::kMxfp8, 8, 32}, std::nullopt);
  expect_nearest_candidate({QuantMode::kNvfp4, 4, 16}, std::nullopt);
}

TEST(QuantRoundTrip, Nvfp4GlobalScaleKeepsSmallRowsPrecise) {
  // Rows around 1e-4 underflow E4M3 scales without a global scale; with g = amax they keep their precision.
  std::vector<float> w = random_matrix(4, 64, 17);
  for (float& x : w) x *= 1e-4f / 16;
  const float g = absolute_max(w.data(), 4, 64);
  const Weight with = quantize_nvfp4(w.data(), 4, 64, g);
  const Weight without = quantize_nvfp4(w.data(), 4, 64, std::nullopt);
  std::vector<float> a(w.size()), b(w.size());
  dequantize_rows(with, 0, 4, a.data());
  dequantize_rows(without, 0, 4, b.data());
  double err_with = 0, err_without = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    err_with += std::fabs(w[i] - a[i]);
    err_without += std::fabs(w[i] - b[i]);
  }
  EXPECT_LT(err_with * 4, err_without);
  EXPECT_FLOAT_EQ(with.output_scale, g / 2688.0f);
}

TEST(QuantRefusal, NanAndInfinityNameTheRow) {
  const int64_t rows = 4, cols = 64;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> w(static_cast<size_t>(rows * cols), 0.5f);
    w[2 * cols + 5] = bad;
    for (const QuantSpec& spec : {QuantSpec{QuantMode::kAffine, 4, 64}, QuantSpec{QuantMode::kMxfp4, 4, 32},
                                  QuantSpec{QuantMode::kMxfp8, 8, 32}, QuantSpec{QuantMode::kNvfp4, 4, 16}}) {
      try {
        quantize(w.data(), rows, cols, spec);
        ADD_FAILURE() << "accepted " << bad << " for " << quant_spec_name(spec);
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
        EXPECT_NE(std::string(e.what()).find("row 2 column 5"), std::string::npos) << e.what();
      }
    }
    EXPECT_THROW(quantize_nvfp4(w.data(), rows, cols, 1.0f), Error);
  }
}

TEST(QuantRefusal, UnsupportedSpecsAndShapes) {
  std::vector<float> w(64 * 2, 0.1f);
  auto kind_of = [&](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::kInternal;
  };
  EXPECT_EQ(kind_of([&] { quantize(w.data(), 2, 64, {QuantMode::kAffine, 7, 64}); }), ErrorKind::kInvalidRequest);
  EXPECT_EQ(kind_of([&] { quantize(w.data(), 2, 64, {QuantMode::kAffine, 4, 48}); }), ErrorKind::kInvalidRequest);
  EXPECT_EQ(kind_of([&] { quantize(w.data(), 4, 32, {QuantMode::kAffine, 4, 64}); }), ErrorKind::kInvalidRequest);
  EXPECT_EQ(kind_of([&] { quantize(w.data(), 2, 64, {QuantMode::kMxfp4, 4, 16}); }), ErrorKind::kInvalidRequest);
  EXPECT_EQ(kind_of([&] { quantize(w.data(), 2, 64, {QuantMode::kNvfp4, 4, 32}); }), ErrorKind::kInvalidRequest);
  EXPECT_EQ(kind_of([&] {
              quantize(w.data(), 2, 64, {QuantMode::kAffine, 4, 64}, DType::kU8);
            }),
            ErrorKind::kInvalidRequest);
  EXPECT_EQ(kind_of([&] { quantize_nvfp4(w.data(), 2, 64, -1.0f); }), ErrorKind::kInvalidRequest);
}

TEST(QuantValidate, InconsistentPackedShapesAreNamed) {
  std::vector<float> w(8 * 128, 0.25f);
  const Weight good = quantize(w.data(), 8, 128, {QuantMode::kAffine, 4, 64});
  EXPECT_NO_THROW(validate(good, "layers.0.mlp.up_proj"));
  auto message_of = [](const Weight& weight) -> std::string {
    try {
      validate(weight, "layers.0.mlp.up_proj");
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidFile);
      return e.what();
    }
    return "";
  };
  Weight wrong_group = good;
  wrong_group.quant.group_size = 32;  // scales hold 2 groups per row, a group of 32 needs 4
  EXPECT_NE(message_of(wrong_group).find("weight.shape[-1]·32/bits"), std::string::npos);
  EXPECT_NE(message_of(wrong_group).find("layers.0.mlp.up_proj"), std::string::npos);
  Weight wrong_bits = good;
  wrong_bits.quant.bits = 8;
  EXPECT_NE(message_of(wrong_bits), "");
  Weight no_biases = good;
  no_biases.biases = Tensor();
  EXPECT_NE(message_of(no_biases).find("biases"), std::string::npos);
  Weight mixed = good;
  mixed.biases = Tensor::zeros(DType::kF16, {8, 2});
  EXPECT_NE(message_of(mixed), "");
  Weight bad_cols = good;
  bad_cols.cols = 100;
  EXPECT_NE(message_of(bad_cols), "");
  Weight mx = quantize(w.data(), 8, 128, {QuantMode::kMxfp4, 4, 32});
  EXPECT_NO_THROW(validate(mx, "mx"));
  mx.scales = Tensor::zeros(DType::kBF16, {8, 4});
  EXPECT_NE(message_of(mx), "");
}

TEST(QuantDequantize, FloatWeightsAndRowRanges) {
  Weight weight;
  weight.rows = 2;
  weight.cols = 3;
  weight.values = Tensor::zeros(DType::kBF16, {2, 3});
  const float values[6] = {1.0f, -2.5f, 0.15625f, 3.0e38f, -0.0f, 1e-40f};
  for (int i = 0; i < 6; ++i) weight.values.data_as<uint16_t>()[i] = float_to_bf16(values[i]);
  validate(weight, "norm");
  float out[3] = {};
  dequantize_rows(weight, 1, 2, out);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i], bf16_to_float(float_to_bf16(values[3 + i])));
  EXPECT_THROW(dequantize_rows(weight, 1, 3, out), Error);
}

}  // namespace
}  // namespace loom::weights::quant
