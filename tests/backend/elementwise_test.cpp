// Activations, gated activations, arithmetic, softcap and clamp against double-precision formulas.
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

// Error bound of the fp32 evaluation of each activation at x, from the rounding of its inner argument propagated
// through a derivative bounded by 1 (tanh, erf·2/√π ≤ 1.13, the logistic ≤ 1/4 · |x|) plus the libm ulps.
double activation_bound(Activation act, double x, double y) {
  switch (act) {
    case Activation::kGeluTanh: {
      const double arg = 0.7978845608 * std::abs(x + 0.044715 * x * x * x);
      return 0.5 * std::abs(x) * (6 * kUnit * (arg + std::abs(x)) + 3 * kUnit) + 4 * kUnit * std::abs(y);
    }
    case Activation::kGeluErf:
      return 0.5 * std::abs(x) * (2 * kUnit * std::abs(x) + 4 * kUnit) + 4 * kUnit * std::abs(y);
    case Activation::kSilu:
      return std::abs(y) * (kUnit * std::abs(x) + 6 * kUnit) + 1e-30;
  }
  return 0;
}

TEST(Activation, EveryKindMatchesFormula) {
  ThreadPool pool(2);
  cpu::CpuBackend backend(pool);
  std::mt19937 rng(31);
  for (int64_t n : {1, 7, 33, 259, 70000}) {
    const auto x = random_floats(rng, static_cast<size_t>(n), -8.0f, 8.0f);
    const auto up = random_floats(rng, static_cast<size_t>(n));
    for (Activation act : {Activation::kGeluTanh, Activation::kGeluErf, Activation::kSilu}) {
      Tensor plain = Tensor::zeros(DType::kF32, {n});
      Tensor gated = Tensor::zeros(DType::kF32, {n});
      backend.activation(act, tensor_of(x, {n}), plain);
      backend.gated_activation(act, tensor_of(x, {n}), tensor_of(up, {n}), gated);
      for (size_t i = 0; i < x.size(); ++i) {
        const double want = reference::activation(act, x[i]);
        const double bound = activation_bound(act, x[i], want);
        ASSERT_NEAR(plain.data_as<float>()[i], want, bound) << "act " << static_cast<int>(act) << " x=" << x[i];
        ASSERT_NEAR(gated.data_as<float>()[i], want * up[i], bound * std::abs(up[i]) + kUnit * std::abs(want * up[i]))
            << "gated act " << static_cast<int>(act) << " x=" << x[i];
      }
    }
  }
}

TEST(Activation, KnownValues) {
  cpu::CpuBackend backend;
  // gelu(0) = 0; gelu_erf(1) = Φ(1) = 0.841344746…; silu(1) = 1/(1+e⁻¹) = 0.731058578…
  const std::vector<float> x{0.0f, 1.0f};
  Tensor out = Tensor::zeros(DType::kF32, {2});
  backend.activation(Activation::kGeluErf, tensor_of(x, {2}), out);
  EXPECT_EQ(out.data_as<float>()[0], 0.0f);
  EXPECT_NEAR(out.data_as<float>()[1], 0.8413447460685429, 1e-7);
  backend.activation(Activation::kSilu, tensor_of(x, {2}), out);
  EXPECT_NEAR(out.data_as<float>()[1], 0.7310585786300049, 1e-7);
}

TEST(Elementwise, ArithmeticIsExactFp32) {
  cpu::CpuBackend backend;
  std::mt19937 rng(32);
  const int64_t n = 259;
  const auto a = random_floats(rng, n, -100.0f, 100.0f);
  const auto b = random_floats(rng, n, -100.0f, 100.0f);
  Tensor sum = Tensor::zeros(DType::kF32, {n}), product = Tensor::zeros(DType::kF32, {n}),
         scaled = Tensor::zeros(DType::kF32, {n}), clamped = Tensor::zeros(DType::kF32, {n});
  backend.add(tensor_of(a, {n}), tensor_of(b, {n}), sum);
  backend.mul(tensor_of(a, {n}), tensor_of(b, {n}), product);
  backend.scale(tensor_of(a, {n}), 0.3f, scaled);
  backend.clamp(tensor_of(a, {n}), -10.0f, 25.0f, clamped);
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(sum.data_as<float>()[i], a[i] + b[i]);
    ASSERT_EQ(product.data_as<float>()[i], a[i] * b[i]);
    ASSERT_EQ(scaled.data_as<float>()[i], a[i] * 0.3f);
    ASSERT_EQ(clamped.data_as<float>()[i], a[i] < -10.0f ? -10.0f : a[i] > 25.0f ? 25.0f : a[i]);
  }
  // In place: out aliases the input.
  Tensor t = tensor_of(a, {n});
  backend.add(t, tensor_of(b, {n}), t);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(t.data_as<float>()[i], a[i] + b[i]);
}

TEST(Elementwise, SoftcapMatchesFormula) {
  cpu::CpuBackend backend;
  std::mt19937 rng(33);
  const auto x = random_floats(rng, 1000, -200.0f, 200.0f);
  Tensor out = Tensor::zeros(DType::kF32, {1000});
  backend.softcap(tensor_of(x, {1000}), 30.0f, out);
  for (size_t i = 0; i < x.size(); ++i) {
    // x/c rounded (u·|x/c|, through tanh' ≤ 1, times c), tanhf's ulps and the product: 2u·|x| + 3u·c.
    ASSERT_NEAR(out.data_as<float>()[i], reference::softcap(x[i], 30.0), 2 * kUnit * std::abs(x[i]) + 3 * kUnit * 30);
    ASSERT_LE(std::abs(out.data_as<float>()[i]), 30.0f);
  }
}

TEST(Elementwise, ShapeMismatchIsAnError) {
  cpu::CpuBackend backend;
  Tensor a = Tensor::zeros(DType::kF32, {3}), b = Tensor::zeros(DType::kF32, {4});
  EXPECT_THROW(backend.add(a, b, a), Error);
  Tensor bf = Tensor::zeros(DType::kBF16, {3});
  EXPECT_THROW(backend.scale(bf, 2.0f, a), Error);
}

}  // namespace
}  // namespace loom::backend
