#include "backend/cpu/simd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "backend/reference/reference.h"
#include "test_util.h"

namespace loom::backend {
namespace {

using cpu::Isa;
using testing::random_floats;

std::string isa_name(Isa isa) {
  return isa == Isa::kAvx2 ? "avx2" : "generic";
}

const cpu::SimdKernels& kernels(Isa isa) {
  return isa == Isa::kAvx2 ? cpu::avx2_kernels() : cpu::generic_kernels();
}

bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

// Every one of the 65536 half and bfloat16 bit patterns converts exactly as the IEEE definition says (the reference
// decodes with ldexp), including subnormals, infinities and signed zeros.
TEST(Simd, ConvertsEveryHalfAndBfloatPattern) {
  weights::Weight f16, bf16;
  f16.rows = bf16.rows = 1;
  f16.cols = bf16.cols = 65536;
  f16.values = Tensor::zeros(DType::kF16, {1, 65536});
  bf16.values = Tensor::zeros(DType::kBF16, {1, 65536});
  for (int i = 0; i < 65536; ++i) {
    f16.values.data_as<uint16_t>()[i] = static_cast<uint16_t>(i);
    bf16.values.data_as<uint16_t>()[i] = static_cast<uint16_t>(i);
  }
  for (Isa isa : cpu::supported_isas()) {
    std::vector<float> half(65536), brain(65536);
    kernels(isa).f16_to_f32(f16.values.data(), half.data(), 65536);
    kernels(isa).bf16_to_f32(bf16.values.data(), brain.data(), 65536);
    for (int i = 0; i < 65536; ++i) {
      ASSERT_TRUE(same_float(half[i], reference::float_element(f16, i))) << isa_name(isa) << " f16 pattern " << i;
      ASSERT_TRUE(same_float(brain[i], reference::float_element(bf16, i))) << isa_name(isa) << " bf16 pattern " << i;
    }
  }
}

TEST(Simd, DotAndAxpyMatchDoublePrecision) {
  std::mt19937 rng(7);
  for (Isa isa : cpu::supported_isas()) {
    for (int64_t len : {1, 7, 8, 15, 16, 33, 259, 512}) {
      const auto a = random_floats(rng, static_cast<size_t>(len));
      const auto b = random_floats(rng, static_cast<size_t>(len));
      double exact = 0, magnitude = 0;
      for (int64_t i = 0; i < len; ++i) {
        exact += static_cast<double>(a[i]) * b[i];
        magnitude += std::abs(static_cast<double>(a[i]) * b[i]);
      }
      EXPECT_NEAR(kernels(isa).dot(a.data(), b.data(), len), exact, testing::dot_bound(len, magnitude))
          << isa_name(isa) << " len " << len;
      std::vector<float> y = b;
      kernels(isa).axpy(0.375f, a.data(), y.data(), len);
      for (int64_t i = 0; i < len; ++i) {
        // One product and one sum, each rounded once at most (FMA rounds once): 2u relative to the magnitudes.
        const double want = b[i] + 0.375 * a[i];
        EXPECT_NEAR(y[i], want, 2 * testing::kUnit * (std::abs(b[i]) + std::abs(0.375 * a[i])) + 1e-30);
      }
    }
  }
}

}  // namespace
}  // namespace loom::backend
