#pragma once
// Exact conversions between float32 and the narrow float formats that quantized weights are stored in: bfloat16,
// IEEE half, OCP FP8 E4M3 ("FN"), the E8M0 exponent-only scale of the MX formats, and FP4 E2M1.
//
// Every decoder is exact (each of these formats is a subset of float32, E8M0's 2^-127 included as a float32
// subnormal). Every encoder rounds to nearest, ties to the even code, unless noted. Per format:
//
// bf16   encode: NaN -> quiet NaN with the same sign (payload truncated, quiet bit forced); ±Inf -> ±Inf; finite
//        values that round past the largest bf16 become ±Inf (IEEE overflow); float32 subnormals round like any
//        other value (bf16 has the same exponent range, so they stay subnormal or become ±0).
// f16    encode: NaN -> 0x7E00 | sign; ±Inf -> ±Inf; |x| >= 65520 (the midpoint past 65504, which ties away from the
//        odd max code) -> ±Inf; values below 2^-14 become f16 subnormals (units of 2^-24), |x| <= 2^-25 -> ±0.
// E4M3   OCP FP8 E4M3FN: no infinities, 0x7F / 0xFF are NaN, largest finite 448, subnormals m/8·2^-6.
//        encode: NaN -> 0x7F | sign; saturating: |x| > 448 and ±Inf -> ±448; |x| < 2^-6 rounds in units of 2^-9
//        (|x| <= 2^-10 -> ±0, the sign is kept).
// E8M0   8-bit biased exponent, value 2^(b-127). MLX semantics: decode 0x00 -> 2^-127 (not zero), 0xFF -> +Inf.
//        encode: clamp(round(log2 x), -127, 127) + 127 where the rounding is of the exact log2 (a float32 is never
//        exactly 2^(k+1/2), so there are no ties); x <= 0 (and -0) -> 0x00; NaN and +Inf -> 0xFF.
//        MLX evaluates log2 in float32 first, so for inputs within a float rounding of 2^(k+1/2)·(1±2^-24) its byte
//        can differ by one from this exact rounding; such a scale is equally good.
// E2M1   FP4 code in the low 4 bits, bit 3 = sign: [0, .5, 1, 1.5, 2, 3, 4, 6]. encode: saturating (|x| > 6 and
//        ±Inf -> ±6), thresholds >5→6, ≥3.5→4, >2.5→3, ≥1.75→2, >1.25→1.5, ≥0.75→1, >0.25→0.5 (ties to the even
//        code); NaN -> 0x7 (+6), as MLX does; -0 and tiny negatives keep the sign bit (code 0x8).

#include <cstdint>

namespace loom {

float bf16_to_float(uint16_t bits);
uint16_t float_to_bf16(float value);

float f16_to_float(uint16_t bits);
uint16_t float_to_f16(float value);

float e4m3_to_float(uint8_t bits);
uint8_t float_to_e4m3(float value);

float e8m0_to_float(uint8_t bits);
uint8_t float_to_e8m0(float value);

// Only the low 4 bits of `code` are read.
float e2m1_to_float(uint8_t code);
uint8_t float_to_e2m1(float value);

// The 16 E2M1 values indexed by code, for kernels that decode through a table.
extern const float kE2M1Values[16];

}  // namespace loom
