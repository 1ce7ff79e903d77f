#pragma once
// A Weight is a logical [rows, cols] matrix (out × in for a Linear, vocab × hidden for an Embedding) together with the
// format it is stored in. Backends run matmuls directly against this storage, dequantizing inside their kernels;
// nothing converts a whole model to float at load time.

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace loom::weights {

enum class QuantMode : uint8_t {
  kNone,    // plain float: `values` is F32, F16 or BF16 [rows, cols]
  kAffine,  // MLX affine: w = scale·q + bias per group of `group_size` consecutive elements of a row
  kMxfp4,   // OCP MX FP4: E2M1 codes, one E8M0 scale per 32 elements
  kMxfp8,   // OCP MX FP8: E4M3 codes, one E8M0 scale per 32 elements
  kNvfp4,   // NVIDIA FP4: E2M1 codes, one E4M3 scale per 16 elements (times an optional tensor-wide scale)
};

struct QuantSpec {
  QuantMode mode = QuantMode::kNone;
  int bits = 0;        // element width for quantized modes (affine 2–8, 4 for fp4 modes, 8 for mxfp8)
  int group_size = 0;  // elements per scale
  bool operator==(const QuantSpec&) const = default;
};

std::string quant_spec_name(const QuantSpec& spec);  // "affine-4/g64", "mxfp4", "bf16"-style names for logs and info

struct Weight {
  int64_t rows = 0;
  int64_t cols = 0;
  QuantSpec quant;
  // kNone: [rows, cols] F32/F16/BF16. Quantized: U32 [rows, cols·bits/32], each row an LSB-first bitstream
  // (weight-formats.md §2).
  Tensor values;
  // Quantized: [rows, cols/group_size]; affine scales are F32/F16/BF16, mx scales are E8M0 bytes, nvfp4 scales are
  // E4M3 bytes (dtype U8 or the matching F8 type).
  Tensor scales;
  Tensor biases;  // affine only: same shape and dtype as scales
  // A tensor-wide multiplier applied after decoding (nvfp4 global scale g/2688, ModelOpt weight_scale_2,
  // 1/compressed-tensors global scale). 1 for everything else.
  float output_scale = 1.0f;
};

}  // namespace loom::weights
