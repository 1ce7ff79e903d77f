// RMSNorm variants (Gemma 3 (1+w), Gemma 4 / Qwen ·w, no weight; full rows and per head) and LayerNorm against the
// double-precision reference.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/reference/reference.h"
#include "core/error.h"
#include "test_util.h"

namespace loom::backend {
namespace {

using testing::kUnit;
using testing::random_floats;
using testing::tensor_of;

TEST(RmsNorm, EveryVariantMatchesReference) {
  ThreadPool pool(2);
  cpu::CpuBackend backend(pool);
  std::mt19937 rng(21);
  // [rows, dim] and per-head [tokens, heads, head_dim] shapes, odd sizes included.
  const std::vector<Shape> shapes{{1, 1}, {7, 259}, {33, 64}, {5, 3, 33}, {2, 8, 256}};
  for (const Shape& shape : shapes) {
    const int64_t dim = shape.back();
    const auto x = random_floats(rng, static_cast<size_t>(shape_elements(shape)), -30.0f, 30.0f);
    const auto w = random_floats(rng, static_cast<size_t>(dim), -0.5f, 1.5f);
    for (NormWeight mode : {NormWeight::kNone, NormWeight::kScale, NormWeight::kOnePlus}) {
      const RmsNormSpec spec{.eps = 1e-6f, .weight = mode};
      Tensor out = Tensor::zeros(DType::kF32, shape);
      const Tensor weight = tensor_of(w, {dim});
      backend.rms_norm(tensor_of(x, shape), &weight, spec, out);
      const auto want = reference::rms_norm(x, dim, w, spec);
      for (size_t i = 0; i < want.size(); ++i) {
        // rsqrt rounded once, then up to three fp32 products and the (1 + w) sum: 6u relative, plus the (1 + w)
        // rounding relative to |w| itself when 1 + w nearly cancels.
        const double bound = 6 * kUnit * std::abs(want[i]) + 2 * kUnit * std::abs(x[i]) * 1.5 + 1e-30;
        ASSERT_NEAR(out.data_as<float>()[i], want[i], bound)
            << shape_string(shape) << " mode " << static_cast<int>(mode) << " element " << i;
      }
    }
  }
}

TEST(RmsNorm, NormalisesToUnitRootMeanSquare) {
  cpu::CpuBackend backend;
  // An independent property: with no weight, each row's mean square is 1 (eps negligible for these magnitudes).
  std::mt19937 rng(22);
  const auto x = random_floats(rng, 4 * 100, -5.0f, 5.0f);
  Tensor out = Tensor::zeros(DType::kF32, {4, 100});
  backend.rms_norm(tensor_of(x, {4, 100}), nullptr, {.eps = 1e-12f, .weight = NormWeight::kNone}, out);
  for (int r = 0; r < 4; ++r) {
    double ms = 0;
    for (int i = 0; i < 100; ++i) ms += std::pow(out.data_as<float>()[r * 100 + i], 2);
    EXPECT_NEAR(ms / 100, 1.0, 1e-5);
  }
}

TEST(LayerNorm, MatchesReference) {
  cpu::CpuBackend backend;
  std::mt19937 rng(23);
  for (const Shape& shape : std::vector<Shape>{{1, 7}, {33, 259}, {3, 1152}}) {
    const int64_t dim = shape.back();
    // A large common offset: the two-pass variance must not cancel.
    auto x = random_floats(rng, static_cast<size_t>(shape_elements(shape)), 99.0f, 101.0f);
    const auto w = random_floats(rng, static_cast<size_t>(dim));
    const auto b = random_floats(rng, static_cast<size_t>(dim));
    Tensor out = Tensor::zeros(DType::kF32, shape);
    backend.layer_norm(tensor_of(x, shape), tensor_of(w, {dim}), tensor_of(b, {dim}), 1e-6f, out);
    const auto want = reference::layer_norm(x, dim, w, b, 1e-6f);
    for (size_t row = 0; row < x.size() / static_cast<size_t>(dim); ++row) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < dim; ++i) mean += x[row * dim + i];
      mean /= dim;
      for (int64_t i = 0; i < dim; ++i) var += std::pow(x[row * dim + i] - mean, 2);
      const double inv_std = 1 / std::sqrt(var / dim + 1e-6);
      for (int64_t i = 0; i < dim; ++i) {
        const size_t at = row * dim + i;
        // x − mean_f is exact up to the rounding of the mean (u·|mean|) and its own (u·|x − mean|); scaled by
        // inv_std·|w|; then three more roundings of the output and bias.
        const double bound = (kUnit * std::abs(mean) + kUnit * std::abs(x[at] - mean)) * 2 * inv_std * std::abs(w[i]) +
                             4 * kUnit * (std::abs(want[at]) + std::abs(b[i])) + 1e-30;
        ASSERT_NEAR(out.data_as<float>()[at], want[at], bound) << "element " << at;
      }
    }
  }
}

TEST(RmsNorm, MissingWeightIsAnError) {
  cpu::CpuBackend backend;
  Tensor x = Tensor::zeros(DType::kF32, {2, 4});
  Tensor out = Tensor::zeros(DType::kF32, {2, 4});
  EXPECT_THROW(backend.rms_norm(x, nullptr, {.weight = NormWeight::kScale}, out), Error);
  Tensor wrong = Tensor::zeros(DType::kF32, {3});
  EXPECT_THROW(backend.rms_norm(x, &wrong, {.weight = NormWeight::kScale}, out), Error);
}

}  // namespace
}  // namespace loom::backend
