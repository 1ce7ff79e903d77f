#pragma once
// Hugging Face quantized checkpoints (weight-formats.md §4) turned into loom Weights. Where the HF layout is
// bit-identical to an MLX format the bytes are copied unchanged into a fresh, aligned Weight (safetensors data is
// not aligned, so nothing is reinterpreted in place); formats with no MLX equivalent are dequantized to float32.
// Leading dimensions (MoE expert stacks [E, out, ...]) are folded into rows: row = expert·out + o.
// Every function takes the tensor name for error messages and throws Error(kInvalidFile) on inconsistent shapes or
// dtypes.

#include <string_view>

#include "core/tensor.h"
#include "weights/weight.h"

namespace loom::weights::quant {

// gpt-oss MXFP4: `blocks` U8 [..., out, in/32, 16], `scales` U8 (E8M0) [..., out, in/32] -> kMxfp4.
Weight from_gpt_oss_mxfp4(const Tensor& blocks, const Tensor& scales, std::string_view name);

// ModelOpt NVFP4: `weight` U8 [..., out, in/2] (low nibble = even element), `weight_scale` F8_E4M3/U8
// [..., out, in/16], `weight_scale_2` F32 with one element -> kNvfp4 with output_scale = weight_scale_2.
Weight from_modelopt_nvfp4(const Tensor& weight, const Tensor& weight_scale, const Tensor& weight_scale_2,
                           std::string_view name);

// compressed-tensors nvfp4-pack-quantized: `weight_packed` U8 [..., out, in/2], `weight_scale` F8_E4M3/U8
// [..., out, in/16], `weight_global_scale` F32 with one element -> kNvfp4 with output_scale = 1/global_scale
// (a multiplication by the rounded reciprocal, so a value can differ by one float32 ulp from dividing).
Weight from_compressed_tensors_nvfp4(const Tensor& weight_packed, const Tensor& weight_scale,
                                     const Tensor& weight_global_scale, std::string_view name);

// compressed-tensors mxfp4-pack-quantized: `weight_packed` U8 [..., out, in/2], `weight_scale` U8/F8_E8M0
// [..., out, in/32] -> kMxfp4.
Weight from_compressed_tensors_mxfp4(const Tensor& weight_packed, const Tensor& weight_scale, std::string_view name);

// compressed-tensors pack-quantized integers: `weight_packed` I32 [out, in·bits/32] (LSB-first, 32/bits values per
// word), `weight_scale` F32/F16/BF16 [out, in/group], optional `weight_zero_point` (empty tensor when symmetric),
// unpacked, I8/U8/I32 [out, in/group]. W = (u − 2^(bits−1) − zp)·s. bits must be 2, 4 or 8 (the packings that
// coincide with MLX's) and the group a multiple of 32. Result: kAffine with scales s and biases −(2^(bits−1)+zp)·s
// in the scale dtype when the scales are F16/BF16 and every bias is exactly representable there (then
// scale·u + bias in float32 equals the HF formula exactly); otherwise a float32 kNone Weight computed by the formula.
Weight from_compressed_tensors_int(const Tensor& weight_packed, const Tensor& weight_scale,
                                   const Tensor& weight_zero_point, int bits, std::string_view name);

// Block FP8 (DeepSeek / Qwen `quant_method: fp8`): `weight` F8_E4M3/U8 [out, in], `weight_scale_inv` F32/BF16/F16
// [ceil(out/block_rows), ceil(in/block_cols)]. W = fp8 · weight_scale_inv[i/block_rows, j/block_cols] in float32,
// returned as a kNone F32 Weight.
Weight dequantize_block_fp8(const Tensor& weight, const Tensor& weight_scale_inv, int block_rows, int block_cols,
                            std::string_view name);

}  // namespace loom::weights::quant
