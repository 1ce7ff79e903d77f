#include "core/dtype.h"

#include <array>
#include <utility>

namespace loom {
namespace {

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  int bits;
};

constexpr std::array kDTypes = {
    DTypeInfo{DType::kBool, "BOOL", 8},
    DTypeInfo{DType::kU8, "U8", 8},
    DTypeInfo{DType::kI8, "I8", 8},
    DTypeInfo{DType::kI16, "I16", 16},
    DTypeInfo{DType::kU16, "U16", 16},
    DTypeInfo{DType::kF16, "F16", 16},
    DTypeInfo{DType::kBF16, "BF16", 16},
    DTypeInfo{DType::kI32, "I32", 32},
    DTypeInfo{DType::kU32, "U32", 32},
    DTypeInfo{DType::kF32, "F32", 32},
    DTypeInfo{DType::kF64, "F64", 64},
    DTypeInfo{DType::kI64, "I64", 64},
    DTypeInfo{DType::kU64, "U64", 64},
    DTypeInfo{DType::kC64, "C64", 64},
    DTypeInfo{DType::kF8E4M3, "F8_E4M3", 8},
    DTypeInfo{DType::kF8E5M2, "F8_E5M2", 8},
    DTypeInfo{DType::kF8E8M0, "F8_E8M0", 8},
    DTypeInfo{DType::kF8E4M3FNUZ, "F8_E4M3FNUZ", 8},
    DTypeInfo{DType::kF8E5M2FNUZ, "F8_E5M2FNUZ", 8},
    DTypeInfo{DType::kF4, "F4", 4},
    DTypeInfo{DType::kF6E2M3, "F6_E2M3", 6},
    DTypeInfo{DType::kF6E3M2, "F6_E3M2", 6},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  __builtin_unreachable();  // every enumerator is in kDTypes
}

}  // namespace

int dtype_bits(DType dtype) {
  return info(dtype).bits;
}

std::optional<uint64_t> dtype_bytes_for(DType dtype, uint64_t count) {
  const uint64_t bits = static_cast<uint64_t>(dtype_bits(dtype));
  if (count != 0 && bits * count / bits != count) return std::nullopt;  // overflow
  const uint64_t total_bits = bits * count;
  if (total_bits % 8 != 0) return std::nullopt;
  return total_bits / 8;
}

std::string_view dtype_name(DType dtype) {
  return info(dtype).name;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

}  // namespace loom
