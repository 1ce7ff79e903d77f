#pragma once
// Element types of tensors on disk and in memory. The set is safetensors' (weight-formats.md §1) so a header can be
// represented without loss; compute uses a subset (F32, F16, BF16 and the packed quantized storage types).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace loom {

enum class DType : uint8_t {
  kBool,
  kU8,
  kI8,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
  kC64,
  kF8E4M3,  // OCP FP8 E4M3 "FN": no infinities, 0x7F/0xFF are NaN, max 448
  kF8E5M2,
  kF8E8M0,  // exponent-only scale (MX formats)
  kF8E4M3FNUZ,
  kF8E5M2FNUZ,
  kF4,  // FP4 E2M1, two per byte; shapes count elements
  kF6E2M3,
  kF6E3M2,
};

// Number of bits one element occupies (4 and 6 for the sub-byte float types).
int dtype_bits(DType dtype);

// Bytes needed for `count` elements, or nullopt when sub-byte elements do not fill whole bytes.
std::optional<uint64_t> dtype_bytes_for(DType dtype, uint64_t count);

// The safetensors spelling ("BF16", "F8_E4M3", …).
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace loom
