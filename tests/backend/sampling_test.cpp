// softmax / argmax / top-k and the vision helpers (average pooling, patch gather) against the reference.
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

TEST(Softmax, MatchesReferenceAndSumsToOne) {
  cpu::CpuBackend backend;
  std::mt19937 rng(41);
  for (int64_t n : {1, 7, 33, 259, 262144}) {
    const int64_t rows = n > 1000 ? 1 : 3;
    const auto x = random_floats(rng, static_cast<size_t>(rows * n), -20.0f, 20.0f);
    Tensor out = Tensor::zeros(DType::kF32, {rows, n});
    backend.softmax(tensor_of(x, {rows, n}), out);
    const auto want = reference::softmax(x, n);
    for (size_t i = 0; i < want.size(); ++i) {
      // exp of an argument off by u·40 at most, expf's ulp, the normalising product: relative 2·(40u + 3u) covering
      // the same perturbation of the (double) sum.
      ASSERT_NEAR(out.data_as<float>()[i], want[i], want[i] * 2 * (40 + 3) * kUnit + 1e-38) << "n " << n;
    }
  }
}

TEST(Argmax, FirstMaximumWins) {
  cpu::CpuBackend backend;
  const std::vector<float> x{1, 5, 5, -1, /* row 2 */ -3, -2, -2, -9};
  std::vector<int32_t> out(2);
  backend.argmax(tensor_of(x, {2, 4}), out);
  EXPECT_EQ(out, reference::argmax(x, 4));
  EXPECT_EQ(out, (std::vector<int32_t>{1, 1}));
}

TEST(TopK, MatchesAStableFullSort) {
  cpu::CpuBackend backend;
  std::mt19937 rng(42);
  auto x = random_floats(rng, 3 * 259);
  for (int i = 0; i < 40; ++i) x[static_cast<size_t>(i * 7)] = 0.5f;  // ties everywhere
  for (int k : {1, 5, 64, 259}) {
    std::vector<int32_t> indices(static_cast<size_t>(3 * k));
    std::vector<float> values(static_cast<size_t>(3 * k));
    backend.top_k(tensor_of(x, {3, 259}), k, indices, values);
    std::vector<int32_t> want_indices;
    std::vector<float> want_values;
    reference::top_k(x, 259, k, want_indices, want_values);
    EXPECT_EQ(indices, want_indices) << "k " << k;
    EXPECT_EQ(values, want_values) << "k " << k;
  }
}

TEST(AvgPool2d, Gemma3ProjectorShape) {
  cpu::CpuBackend backend;
  std::mt19937 rng(43);
  for (auto [h, w, c, k] : std::vector<std::tuple<int64_t, int64_t, int64_t, int>>{{64, 64, 33, 4}, {6, 9, 5, 3}}) {
    const auto x = random_floats(rng, static_cast<size_t>(h * w * c));
    Tensor out = Tensor::zeros(DType::kF32, {(h / k) * (w / k), c});
    backend.avg_pool_2d(tensor_of(x, {h * w, c}), h, w, k, out);
    const auto want = reference::avg_pool_2d(x, h, w, c, k);
    // k² additions and one product, all of values ≤ 1: (k² + 1)·u.
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(out.data_as<float>()[i], want[i], (k * k + 1) * kUnit);
  }
}

TEST(ExtractPatches, ConvAsMatmulLayout) {
  cpu::CpuBackend backend;
  std::mt19937 rng(44);
  const int64_t c = 3, h = 28, w = 42;
  const auto image = random_floats(rng, static_cast<size_t>(c * h * w));
  Tensor out = Tensor::zeros(DType::kF32, {(h / 14) * (w / 14), c * 14 * 14});
  backend.extract_patches(tensor_of(image, {c, h, w}), 14, out);
  EXPECT_EQ(testing::values_of(out), reference::extract_patches(image, c, h, w, 14));
  Tensor bad = Tensor::zeros(DType::kF32, {1, 1});
  EXPECT_THROW(backend.extract_patches(tensor_of(image, {c, h, w}), 5, bad), Error);
}

}  // namespace
}  // namespace loom::backend
