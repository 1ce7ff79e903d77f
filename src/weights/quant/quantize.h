#pragma once
// Quantizers and dequantizers for the MLX storage formats (weight-formats.md §2): affine 2/3/4/5/6/8 bits, mxfp4,
// mxfp8 and nvfp4. Quantizers reproduce MLX's CPU algorithms bit for bit; dequantizers produce float32 for a range of
// rows so that backends, the quantize tool and tests share one definition of what a stored weight means.
//
// Affine, as MLX computes it (mlx/backend/cpu/quantized.cpp): min, max, scale, bias and every q are computed in
// float32 from the float32 inputs; only then are scale and bias rounded (to nearest even) to the scale dtype, bf16 by
// default. q therefore uses the unrounded float32 scale/bias, which is why dequantizing a stored weight can be off by
// a little more than scale/2 from the input. Dequantization computes scale·q + bias in float32 from the stored scale
// and bias.
//
// mxfp4 / mxfp8: scale byte = E8M0(amax/6) or E8M0(amax/448) with amax/6 evaluated in float32; element code =
// E2M1(w / 2^(s-127)) or E4M3(w / 2^(s-127)), the division in float32. An all-zero group gets scale byte 0 (2^-127).
// nvfp4: scale byte = E4M3(amax/6); code = E2M1(w / E4M3(scale)), or 0 when the scale decodes to 0. With a global
// scale g (MLX's convention: the tensor's amax, so that g/2688 = ModelOpt's weight_scale_2): t = g/2688,
// scale = E4M3((amax/6)/t), code = E2M1(w / (E4M3(scale)·t)), output_scale = t.

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.h"
#include "weights/weight.h"

namespace loom::weights::quant {

// Quantizes a row-major float32 [rows, cols] matrix. `scale_dtype` (F32, F16 or BF16) applies to affine scales and
// biases only. Throws Error(kInvalidRequest) naming the row and column of a NaN or infinite input, and for an
// unsupported spec or cols not divisible by the group size.
Weight quantize(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec, DType scale_dtype = DType::kBF16);

// nvfp4 with a tensor-wide global scale (see above). `global_scale` must be finite and positive.
Weight quantize_nvfp4(const float* w, int64_t rows, int64_t cols, std::optional<float> global_scale);

// The largest |w| of a matrix: the global scale MLX would pick. Throws on NaN/Inf like quantize().
float absolute_max(const float* w, int64_t rows, int64_t cols);

// Checks that a Weight's tensors agree with its QuantSpec: dtypes, ranks, packed width (values.shape[-1]·32/bits ==
// scales.shape[-1]·group_size == cols), biases for affine. Throws Error(kInvalidFile) mentioning `name`.
void validate(const Weight& weight, std::string_view name);

// Writes rows [row_begin, row_end) of the logical matrix as float32 to `out` ([row_end - row_begin, cols]).
// Host tensors only; `weight` must pass validate().
void dequantize_rows(const Weight& weight, int64_t row_begin, int64_t row_end, float* out);

}  // namespace loom::weights::quant
