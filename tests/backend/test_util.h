#pragma once
// Shared helpers for the backend tests: seeded random tensors, float weights built from random bit patterns (so no
// conversion code under test is needed to make them), and error bounds derived from fp32 rounding.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "weights/weight.h"

namespace loom::backend::testing {

// Unit roundoff of fp32 (round to nearest).
inline constexpr double kUnit = 1.0 / (1 << 24);

inline std::vector<float> random_floats(std::mt19937& rng, size_t count, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(count);
  for (float& v : out) v = dist(rng);
  return out;
}

inline Tensor tensor_of(const std::vector<float>& values, Shape shape) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
  EXPECT_EQ(static_cast<size_t>(t.elements()), values.size());
  std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

inline std::vector<float> values_of(const Tensor& t) {
  return {t.data_as<float>(), t.data_as<float>() + t.elements()};
}

// A float weight [rows, cols] of random values in about ±2: f32 from a uniform draw, bf16 as the top half of one,
// f16 from random sign / exponent 11..16 / mantissa bits (all normal numbers).
inline weights::Weight random_weight(std::mt19937& rng, DType dtype, int64_t rows, int64_t cols) {
  weights::Weight w;
  w.rows = rows;
  w.cols = cols;
  w.values = Tensor::zeros(dtype, {rows, cols});
  const int64_t n = rows * cols;
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  if (dtype == DType::kF32) {
    for (int64_t i = 0; i < n; ++i) w.values.data_as<float>()[i] = dist(rng);
  } else if (dtype == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) {
      const float f = dist(rng);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      w.values.data_as<uint16_t>()[i] = static_cast<uint16_t>(bits >> 16);
    }
  } else {
    std::uniform_int_distribution<int> exponent(11, 16), mantissa(0, 1023), sign(0, 1);
    for (int64_t i = 0; i < n; ++i) {
      w.values.data_as<uint16_t>()[i] =
          static_cast<uint16_t>((sign(rng) << 15) | (exponent(rng) << 10) | mantissa(rng));
    }
  }
  return w;
}

// |computed − exact| bound for an fp32 dot product of length k accumulated in any order (with or without FMA):
// (k + 1)·u·Σ|x_i·w_i| (Higham, Accuracy and Stability, §3.1), plus the final rounding.
inline double dot_bound(int64_t k, double sum_abs_products) {
  return (static_cast<double>(k) + 2.0) * kUnit * sum_abs_products + 1e-30;
}

}  // namespace loom::backend::testing
