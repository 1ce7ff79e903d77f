// Every code of every format is checked against a formula computed from its sign/exponent/mantissa fields with
// std::ldexp, and every encoder against a brute-force search for the nearest value over all codes.
#include "core/float_formats.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace loom {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The value of a sign/exponent/mantissa code with the given field widths and IEEE conventions (no special values:
// callers handle the all-ones exponent themselves).
double ieee_formula(uint32_t code, int exponent_bits, int mantissa_bits, int bias) {
  const uint32_t mantissa = code & ((1u << mantissa_bits) - 1);
  const uint32_t exponent = (code >> mantissa_bits) & ((1u << exponent_bits) - 1);
  const bool negative = (code >> (mantissa_bits + exponent_bits)) & 1u;
  double magnitude = exponent == 0 ? std::ldexp(static_cast<double>(mantissa), 1 - bias - mantissa_bits)
                                   : std::ldexp(static_cast<double>(mantissa + (1u << mantissa_bits)),
                                                static_cast<int>(exponent) - bias - mantissa_bits);
  return negative ? -magnitude : magnitude;
}

void expect_same_float(float actual, double expected, uint32_t code) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << "code " << code;
    return;
  }
  EXPECT_EQ(std::bit_cast<uint32_t>(actual), std::bit_cast<uint32_t>(static_cast<float>(expected)))
      << "code " << code << " decoded " << actual << " expected " << expected;
  EXPECT_EQ(static_cast<double>(actual), expected) << "code " << code << " is not exactly representable";
}

// Nearest code by brute force over `codes` (non-negative magnitudes), ties to the even code.
template <typename Decode>
uint32_t nearest_code(double magnitude, uint32_t code_count, Decode decode) {
  uint32_t best = 0;
  long double best_distance = std::numeric_limits<long double>::infinity();
  for (uint32_t code = 0; code < code_count; ++code) {
    const double value = decode(code);
    if (std::isnan(value) || std::isinf(value)) continue;
    const long double distance = std::fabs(static_cast<long double>(magnitude) - static_cast<long double>(value));
    if (distance < best_distance || (distance == best_distance && (code & 1u) == 0)) {
      best = code;
      best_distance = distance;
    }
  }
  return best;
}

std::vector<float> random_floats(int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> values;
  while (static_cast<int>(values.size()) < count) {
    const float v = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isfinite(v)) values.push_back(v);
  }
  return values;
}

// ---- bf16 ----

double bf16_formula(uint32_t code) {
  if (((code >> 7) & 0xFF) == 0xFF) {
    if (code & 0x7F) return std::numeric_limits<double>::quiet_NaN();
    return (code & 0x8000) ? -HUGE_VAL : HUGE_VAL;
  }
  return ieee_formula(code, 8, 7, 127);
}

TEST(FloatFormats, Bf16DecodesEveryCode) {
  for (uint32_t code = 0; code < 65536; ++code) {
    expect_same_float(bf16_to_float(static_cast<uint16_t>(code)), bf16_formula(code), code);
  }
}

TEST(FloatFormats, Bf16RoundTripsEveryNonNanCode) {
  for (uint32_t code = 0; code < 65536; ++code) {
    const float value = bf16_to_float(static_cast<uint16_t>(code));
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(value))));
      continue;
    }
    ASSERT_EQ(float_to_bf16(value), code);
  }
}

TEST(FloatFormats, Bf16TiesGoToEven) {
  for (uint32_t code = 0; code < 0x7F7F; ++code) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const double low = bf16_formula(code), high = bf16_formula(code + 1);
      const auto mid = static_cast<float>((low + high) / 2);  // exact: bf16 has 8 significant bits
      ASSERT_EQ(static_cast<double>(mid), (low + high) / 2);
      const float signed_mid = sign ? -mid : mid;
      const uint32_t even = (code & 1u) ? code + 1 : code;
      ASSERT_EQ(float_to_bf16(signed_mid), even | sign) << "midpoint after code " << code;
      ASSERT_EQ(float_to_bf16(std::nextafter(signed_mid, 0.0f)), code | sign);
      ASSERT_EQ(float_to_bf16(std::nextafter(signed_mid, sign ? -kInf : kInf)), (code + 1) | sign);
    }
  }
  // Past the largest finite value the midpoint ties away from the odd max code: to infinity.
  const double max = bf16_formula(0x7F7F);
  EXPECT_EQ(float_to_bf16(static_cast<float>(max + std::ldexp(1.0, 127 - 8))), 0x7F80);
  EXPECT_EQ(float_to_bf16(std::nextafter(static_cast<float>(max + std::ldexp(1.0, 127 - 8)), 0.0f)), 0x7F7F);
}

TEST(FloatFormats, Bf16EncoderMatchesNearestSearch) {
  std::vector<float> values = random_floats(300, 1);
  for (float v : {0.0f, -0.0f, 1.0f, 1.00390625f, 1e-40f, -1e-45f, 3.0e38f, 0.1f, -0.3f}) values.push_back(v);
  const double max = bf16_formula(0x7F7F);
  for (float v : values) {
    if (std::fabs(v) > max) continue;
    const uint32_t expected = nearest_code(std::fabs(v), 0x7F80, bf16_formula) | (std::signbit(v) ? 0x8000u : 0u);
    ASSERT_EQ(float_to_bf16(v), expected) << v;
  }
  EXPECT_EQ(float_to_bf16(kInf), 0x7F80);
  EXPECT_EQ(float_to_bf16(-kInf), 0xFF80);
  const uint16_t nan = float_to_bf16(-std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(bf16_to_float(nan)));
  EXPECT_EQ(nan & 0x8000, 0x8000);
  // A signalling NaN whose payload lives only in the low 16 bits must not turn into infinity.
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::bit_cast<float>(0x7F800001u)))));
}

// ---- f16 ----

double f16_formula(uint32_t code) {
  if (((code >> 10) & 0x1F) == 0x1F) {
    if (code & 0x3FF) return std::numeric_limits<double>::quiet_NaN();
    return (code & 0x8000) ? -HUGE_VAL : HUGE_VAL;
  }
  return ieee_formula(code, 5, 10, 15);
}

TEST(FloatFormats, F16DecodesEveryCode) {
  for (uint32_t code = 0; code < 65536; ++code) {
    expect_same_float(f16_to_float(static_cast<uint16_t>(code)), f16_formula(code), code);
  }
}

TEST(FloatFormats, F16RoundTripsEveryNonNanCode) {
  for (uint32_t code = 0; code < 65536; ++code) {
    const float value = f16_to_float(static_cast<uint16_t>(code));
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(value))));
      continue;
    }
    ASSERT_EQ(float_to_f16(value), code);
  }
}

TEST(FloatFormats, F16TiesGoToEven) {
  for (uint32_t code = 0; code < 0x7BFF; ++code) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const double low = f16_formula(code), high = f16_formula(code + 1);
      const auto mid = static_cast<float>((low + high) / 2);
      ASSERT_EQ(static_cast<double>(mid), (low + high) / 2);
      const float signed_mid = sign ? -mid : mid;
      const uint32_t even = (code & 1u) ? code + 1 : code;
      ASSERT_EQ(float_to_f16(signed_mid), even | sign) << "midpoint after code " << code;
      ASSERT_EQ(float_to_f16(std::nextafter(signed_mid, 0.0f)), code | sign);
      ASSERT_EQ(float_to_f16(std::nextafter(signed_mid, sign ? -kInf : kInf)), (code + 1) | sign);
    }
  }
  EXPECT_EQ(float_to_f16(65520.0f), 0x7C00);
  EXPECT_EQ(float_to_f16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(float_to_f16(-1e10f), 0xFC00);
  EXPECT_EQ(float_to_f16(0x1p-25f), 0x0000);  // half the smallest subnormal: ties to the even code 0
  EXPECT_EQ(float_to_f16(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
  EXPECT_EQ(float_to_f16(-0x1p-26f), 0x8000);
  EXPECT_EQ(float_to_f16(1e-45f), 0x0000);  // a float32 subnormal
}

TEST(FloatFormats, F16EncoderMatchesNearestSearch) {
  std::vector<float> values;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> exponent(-26.0f, 16.0f);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int i = 0; i < 300; ++i) values.push_back(unit(rng) * std::exp2(exponent(rng)));
  for (float v : {0.0f, -0.0f, 1.0f, 65504.0f, 65519.0f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 0.1f, -0.3f}) values.push_back(v);
  for (float v : values) {
    const uint32_t expected = nearest_code(std::fabs(v), 0x7C00, f16_formula) | (std::signbit(v) ? 0x8000u : 0u);
    ASSERT_EQ(float_to_f16(v), expected) << v;
  }
  EXPECT_EQ(float_to_f16(kInf), 0x7C00);
  EXPECT_EQ(float_to_f16(-kInf), 0xFC00);
  EXPECT_EQ(float_to_f16(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
}

// ---- E4M3 (FN) ----

double e4m3_formula(uint32_t code) {
  if ((code & 0x7F) == 0x7F) return std::numeric_limits<double>::quiet_NaN();
  return ieee_formula(code, 4, 3, 7);
}

TEST(FloatFormats, E4m3DecodesEveryCode) {
  for (uint32_t code = 0; code < 256; ++code) {
    expect_same_float(e4m3_to_float(static_cast<uint8_t>(code)), e4m3_formula(code), code);
  }
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), 0x1p-9f);
}

TEST(FloatFormats, E4m3EncoderMatchesNearestSearch) {
  for (uint32_t code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;
    ASSERT_EQ(float_to_e4m3(e4m3_to_float(static_cast<uint8_t>(code))), code);
  }
  std::vector<float> values;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> exponent(-12.0f, 10.0f);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int i = 0; i < 2000; ++i) values.push_back(unit(rng) * std::exp2(exponent(rng)));
  // Every midpoint between neighbouring codes and its two float neighbours.
  for (uint32_t code = 0; code < 0x7E; ++code) {
    const auto mid = static_cast<float>((e4m3_formula(code) + e4m3_formula(code + 1)) / 2);
    for (float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, kInf)}) {
      values.push_back(v);
      values.push_back(-v);
    }
  }
  for (float v : {0.0f, -0.0f, 448.0f, 449.0f, 464.0f, 1000.0f, 1e-30f, -1e-30f}) values.push_back(v);
  for (float v : values) {
    const uint32_t expected = nearest_code(std::fabs(v), 0x7F, e4m3_formula) | (std::signbit(v) ? 0x80u : 0u);
    ASSERT_EQ(float_to_e4m3(v), expected) << v;
  }
  // Far beyond the range the brute-force distances lose precision; saturation is checked directly.
  EXPECT_EQ(float_to_e4m3(1e6f), 0x7E);
  EXPECT_EQ(float_to_e4m3(-1e30f), 0xFE);
  EXPECT_EQ(float_to_e4m3(kInf), 0x7E);
  EXPECT_EQ(float_to_e4m3(-kInf), 0xFE);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::quiet_NaN()), 0x7F);
}

// ---- E8M0 ----

TEST(FloatFormats, E8m0DecodesEveryCode) {
  for (uint32_t code = 0; code < 255; ++code) {
    expect_same_float(e8m0_to_float(static_cast<uint8_t>(code)), std::ldexp(1.0, static_cast<int>(code) - 127), code);
  }
  EXPECT_EQ(e8m0_to_float(0), 0x1p-127f);
  EXPECT_EQ(e8m0_to_float(0xFF), kInf);
}

TEST(FloatFormats, E8m0EncoderMatchesNearestSearch) {
  for (uint32_t code = 0; code < 255; ++code) ASSERT_EQ(float_to_e8m0(e8m0_to_float(static_cast<uint8_t>(code))), code);
  std::vector<float> values;
  std::mt19937 rng(4);
  for (float v : random_floats(3000, 5)) values.push_back(std::fabs(v));
  // Floats on both sides of every 2^(k+1/2), the only places where the rounding can go either way.
  for (int k = -149; k < 128; ++k) {
    const auto boundary = static_cast<float>(std::ldexp(std::sqrt(2.0L), k));
    if (!std::isfinite(boundary) || boundary == 0.0f) continue;
    values.push_back(boundary);
    values.push_back(std::nextafter(boundary, 0.0f));
    values.push_back(std::nextafter(boundary, kInf));
  }
  for (float v : values) {
    // Nearest exponent in the log domain, by brute force over the codes 0..254.
    const long double log2v = std::log2l(static_cast<long double>(v));
    uint32_t expected = 0;
    long double best = std::numeric_limits<long double>::infinity();
    for (uint32_t code = 0; code < 255; ++code) {
      const long double distance = std::fabs(log2v - static_cast<long double>(static_cast<int>(code) - 127));
      if (distance < best) {
        best = distance;
        expected = code;
      }
    }
    ASSERT_EQ(float_to_e8m0(v), expected) << v;
  }
  EXPECT_EQ(float_to_e8m0(0.0f), 0x00);
  EXPECT_EQ(float_to_e8m0(-0.0f), 0x00);
  EXPECT_EQ(float_to_e8m0(-4.0f), 0x00);
  EXPECT_EQ(float_to_e8m0(1e-45f), 0x00);
  EXPECT_EQ(float_to_e8m0(std::numeric_limits<float>::max()), 0xFE);
  EXPECT_EQ(float_to_e8m0(kInf), 0xFF);
  EXPECT_EQ(float_to_e8m0(std::numeric_limits<float>::quiet_NaN()), 0xFF);
}

// ---- E2M1 ----

double e2m1_formula(uint32_t code) {
  return ieee_formula(code & 0xF, 2, 1, 1);
}

TEST(FloatFormats, E2m1DecodesEveryCode) {
  for (uint32_t code = 0; code < 16; ++code) {
    expect_same_float(e2m1_to_float(static_cast<uint8_t>(code)), e2m1_formula(code), code);
    EXPECT_EQ(e2m1_to_float(static_cast<uint8_t>(code | 0xF0)), e2m1_to_float(static_cast<uint8_t>(code)));
  }
}

TEST(FloatFormats, E2m1EncoderMatchesNearestSearch) {
  for (uint32_t code = 0; code < 16; ++code) ASSERT_EQ(float_to_e2m1(e2m1_to_float(static_cast<uint8_t>(code))), code);
  std::vector<float> values;
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> uniform(-8.0f, 8.0f);
  for (int i = 0; i < 2000; ++i) values.push_back(uniform(rng));
  for (uint32_t code = 0; code < 7; ++code) {
    const auto mid = static_cast<float>((e2m1_formula(code) + e2m1_formula(code + 1)) / 2);
    for (float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, kInf)}) {
      values.push_back(v);
      values.push_back(-v);
    }
  }
  for (float v : {0.0f, -0.0f, 6.0f, 7.0f, 100.0f, -100.0f}) values.push_back(v);
  for (float v : values) {
    const uint32_t expected = nearest_code(std::fabs(v), 8, e2m1_formula) | (std::signbit(v) ? 0x8u : 0u);
    ASSERT_EQ(float_to_e2m1(v), expected) << v;
  }
  EXPECT_EQ(float_to_e2m1(-1e30f), 0xF);
  EXPECT_EQ(float_to_e2m1(kInf), 0x7);
  EXPECT_EQ(float_to_e2m1(-kInf), 0xF);
  EXPECT_EQ(float_to_e2m1(std::numeric_limits<float>::quiet_NaN()), 0x7);
}

}  // namespace
}  // namespace loom
