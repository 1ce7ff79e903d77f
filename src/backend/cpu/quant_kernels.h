#pragma once
// CPU kernels for the quantized weight formats (docs/FORMATS.md "Quantized formats"): affine 2/3/4/5/6/8 bits with
// F32/F16/BF16 scales and biases, mxfp4, mxfp8 and nvfp4. Each format is a fused GEMV (packed bytes read once,
// dequantized in registers, multiplied into f32 accumulators) and a row decoder (for the prefill tiles that feed
// sgemm and for the embedding gather). Portable kernels exist for every format, AVX2 ones too (affine 2/3/5/6 bits
// through a shuffle-and-shift unpacker, dedicated decoders for 4/8 bits and the float formats).
//
// Accumulation order of the fused GEMV, per weight row and activation row x (m = cols/group groups):
//   affine:  A_g = Σ_{j∈g} x_j·q_j  (f32, the integer code q_j exact in f32),  S_g = Σ_{j∈g} x_j  (once per call),
//            out = Σ_g fl(A_g·scale_g) + Σ_g bias_g·S_g.
//   float formats: A_g = Σ_{j∈g} x_j·e_j with e_j the element value (E2M1 codes are kept as 2·e, E4M3 ones as
//            e/256, both exact, and the power of two is folded into the final multiply), out = (Σ_g A_g·scale_g)·c
//            with c = output_scale (fp4) times that power of two.
// Every term x_j·w_j therefore passes through at most G + m + 8 roundings (product, in-group sum of at most G
// terms, scaling, the sum over m groups, the horizontal sum, the final factor, the bias dot), so
//   |out − Σ_j x_j·w_j| ≤ (G + m + 8)·u·M (to first order), u = 2^-24,
// where M = Σ_j |x_j|·(|scale_g|·q_j + |bias_g|) for affine (the factorisation adds bias and scaled code separately,
// so cancellation between them is not free) and M = Σ_j |x_j·w_j| for the float formats. The decoders are exact:
// they compute each element with the same float32 operations as weights::quant::dequantize_rows, bit for bit.

#include <cstdint>
#include <vector>

#include "backend/cpu/simd.h"
#include "backend/cpu/weight_formats.h"
#include "weights/weight.h"

namespace loom::backend::cpu {

// The kernels for a quantized spec that weights::quant::validate() accepts on the given instruction set: the AVX2
// ones where they exist, else the portable ones.
const FormatKernels& quant_format_kernels(const weights::QuantSpec& spec, Isa isa);

// The portable kernels, for every valid quantized spec.
const FormatKernels& generic_quant_kernels(const weights::QuantSpec& spec);
// The AVX2 kernels, or nullptr for a spec without them (or off x86-64). Call only when isa_supported(Isa::kAvx2).
const FormatKernels* avx2_quant_kernels(const weights::QuantSpec& spec);

namespace quant_detail {

inline int64_t group_count(const weights::Weight& w) {
  return w.cols / w.quant.group_size;
}

// The packed bytes of row r: cols·bits/8 bytes, groups starting on 4-byte boundaries.
inline const uint8_t* packed_row(const weights::Weight& w, int64_t r) {
  return static_cast<const uint8_t*>(w.values.data()) + r * (w.cols * w.quant.bits / 8);
}

// The group scales of rows [r, r + rows) as f32, row after row (affine: the stored F32/F16/BF16 value; mx:
// 2^(s−127); nvfp4: E4M3(s)), each times `factor`, which must be a power of two so that the product stays exact.
// Several rows at once: one conversion call for a block of rows instead of one per row (per-row calls cost as much
// as a short row's GEMV work at batch 1).
void row_scales(const weights::Weight& w, int64_t r, float factor, const SimdKernels& simd, float* out,
                int64_t rows = 1);
// The affine biases of rows [r, r + rows) as f32.
void row_biases(const weights::Weight& w, int64_t r, const SimdKernels& simd, float* out, int64_t rows = 1);

// sums[i·m + g] = Σ of x[i, g·group … (g+1)·group), summed in order.
void group_sums(const float* x, int64_t n, int64_t cols, int group, float* sums);

// The E4M3 value of every byte (NaN for 0x7F / 0xFF).
const float* e4m3_values();

// Per-thread buffers the kernels reuse between calls (one GEMV or decode at a time per thread).
struct Scratch {
  std::vector<float> x;       // activations in a kernel-specific order
  std::vector<float> sums;    // group sums of x
  std::vector<float> scales;  // one row's scales
  std::vector<float> biases;  // one row's biases
  std::vector<float> codes;   // one group's decoded codes
};
Scratch& scratch();

// Resizes v to at least `count` elements and returns its data.
inline float* reserve(std::vector<float>& v, int64_t count) {
  if (v.size() < static_cast<size_t>(count)) v.resize(static_cast<size_t>(count));
  return v.data();
}

}  // namespace quant_detail
}  // namespace loom::backend::cpu
