#include "core/dtype.h"

#include <gtest/gtest.h>

namespace loom {
namespace {

TEST(DType, NamesRoundTrip) {
  for (std::string_view name :
       {"BOOL",    "U8",          "I8",          "I16", "U16",     "F16",    "BF16",    "I32",
        "U32",     "F32",         "F64",         "I64", "U64",     "C64",    "F8_E4M3", "F8_E5M2",
        "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F4",  "F6_E2M3", "F6_E3M2"}) {
    const auto dtype = dtype_from_name(name);
    ASSERT_TRUE(dtype.has_value()) << name;
    EXPECT_EQ(dtype_name(*dtype), name);
  }
  EXPECT_FALSE(dtype_from_name("bf16").has_value());
  EXPECT_FALSE(dtype_from_name("").has_value());
}

TEST(DType, ByteCounts) {
  EXPECT_EQ(dtype_bytes_for(DType::kBF16, 3), 6u);
  EXPECT_EQ(dtype_bytes_for(DType::kF64, 2), 16u);
  EXPECT_EQ(dtype_bytes_for(DType::kF4, 4), 2u);
  EXPECT_FALSE(dtype_bytes_for(DType::kF4, 3).has_value());
  EXPECT_EQ(dtype_bytes_for(DType::kF6E2M3, 4), 3u);
  EXPECT_FALSE(dtype_bytes_for(DType::kF32, uint64_t{1} << 62).has_value());
}

}  // namespace
}  // namespace loom
