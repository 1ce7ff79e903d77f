#include "core/tensor.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace loom {
namespace {

TEST(Tensor, ZerosAllocatesAlignedZeroedStorage) {
  Tensor t = Tensor::zeros(DType::kF32, {3, 5});
  EXPECT_EQ(t.elements(), 15);
  EXPECT_EQ(t.bytes(), 60u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  for (float v : t.span<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, ReshapeSharesStorageAndChecksCount) {
  Tensor t = Tensor::zeros(DType::kBF16, {4, 6});
  Tensor r = t.reshaped({2, 12});
  EXPECT_EQ(r.data(), t.data());
  EXPECT_EQ(r.dim(-1), 12);
  EXPECT_THROW(t.reshaped({5, 5}), Error);
}

TEST(Tensor, BorrowDoesNotOwn) {
  float buffer[4] = {1, 2, 3, 4};
  Tensor t = Tensor::borrow(DType::kF32, {4}, buffer);
  EXPECT_EQ(t.span<float>()[2], 3.0f);
}

TEST(Tensor, ShapeChecks) {
  EXPECT_EQ(shape_elements({}), 1);
  EXPECT_EQ(shape_string({2, 3}), "[2, 3]");
  EXPECT_THROW(shape_elements({-1}), Error);
  EXPECT_THROW(shape_elements({int64_t{1} << 40, int64_t{1} << 40}), Error);
  EXPECT_THROW(Tensor::zeros(DType::kF32, {2}).dim(2), Error);
}

}  // namespace
}  // namespace loom
