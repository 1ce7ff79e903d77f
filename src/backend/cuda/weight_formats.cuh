#pragma once
// How CUDA kernels read each weight storage format. A format decodes one "unit" of a weight row, the 32 consecutive
// elements [32·u, 32·u + 32), into float32. Every group size the formats allow (affine 32/64/128, mx 32, nvfp4 16)
// is a multiple or a divisor of 32 elements and every group starts on a 32-bit word boundary, so a unit is a whole
// number of words (bits words for bits-wide codes) inside at most two groups, and its loads are 16 bytes wide when
// its size allows (4-bit codes: one 16-byte load; 8-bit: two; f32: eight; bf16/f16: four).
//
// The decoded values are bit-identical to weights::quant::dequantize_rows: the same float32 operations in the same
// order, with explicit round-to-nearest intrinsics so that nvcc does not contract scale·q + bias into an FMA.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/kernels.h"

namespace loom::backend::cuda {

using kernels::WeightView;

__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits) {
  return __uint_as_float(bits << 16);
}

__device__ __forceinline__ float f16_bits_to_float(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

__device__ __forceinline__ float load_float(const void* base, int64_t index, int kind) {
  if (kind == 0) return static_cast<const float*>(base)[index];
  const uint32_t bits = static_cast<const uint16_t*>(base)[index];
  return kind == 1 ? f16_bits_to_float(bits) : bf16_bits_to_float(bits);
}

// E8M0 as MLX decodes it: 2^(s−127), byte 0 is 2^-127 (a float32 subnormal), 0xFF is +inf.
__device__ __forceinline__ float e8m0_to_float(uint32_t s) {
  if (s == 0) return __uint_as_float(0x00400000u);
  if (s == 255) return __uint_as_float(0x7F800000u);
  return __uint_as_float(s << 23);
}

// OCP E4M3 (FN): no infinities, 0x7F / 0xFF are NaN.
__device__ __forceinline__ float e4m3_to_float(uint32_t b) {
  const uint32_t sign = (b & 0x80u) << 24;
  const uint32_t e = (b >> 3) & 15u, m = b & 7u;
  if ((b & 0x7Fu) == 0x7Fu) return __uint_as_float(sign | 0x7FC00000u);
  if (e == 0) return __uint_as_float(sign | __float_as_uint(static_cast<float>(m) * 0.001953125f));  // m·2^-9
  return __uint_as_float(sign | ((e + 120u) << 23) | (m << 20));
}

// E2M1 code (low 4 bits, bit 3 = sign): [0, .5, 1, 1.5, 2, 3, 4, 6].
__device__ __forceinline__ float e2m1_to_float(uint32_t code) {
  const uint32_t sign = (code & 8u) << 28;
  const uint32_t e = (code >> 1) & 3u, m = code & 1u;
  const uint32_t magnitude = e == 0 ? (m != 0 ? 0x3F000000u : 0u) : (((e + 126u) << 23) | (m << 22));
  return __uint_as_float(sign | magnitude);
}

// N consecutive 32-bit words with the widest loads N and the alignment allow (p is 4·N-byte aligned when N is even).
template <int N>
__device__ __forceinline__ void load_words(const uint32_t* p, uint32_t (&w)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(p) + i);
      w[4 * i] = v.x;
      w[4 * i + 1] = v.y;
      w[4 * i + 2] = v.z;
      w[4 * i + 3] = v.w;
    }
  } else if constexpr (N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
      const uint2 v = __ldg(reinterpret_cast<const uint2*>(p) + i);
      w[2 * i] = v.x;
      w[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) w[i] = __ldg(p + i);
  }
}

// Float weights whose rows are whole units (cols % 32 == 0): Kind 0 F32, 1 F16, 2 BF16.
template <int Kind>
struct FloatFormat {
  static constexpr bool kWholeUnits = true;
  __device__ __forceinline__ static void decode(const WeightView& w, int64_t row, int64_t unit, float (&out)[32]) {
    constexpr int kWords = Kind == 0 ? 32 : 16;
    uint32_t words[kWords];
    load_words<kWords>(reinterpret_cast<const uint32_t*>(w.values + row * w.row_bytes) + unit * kWords, words);
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      if constexpr (Kind == 0) {
        out[i] = __uint_as_float(words[i]);
      } else {
        const uint32_t bits = (words[i / 2] >> (16 * (i % 2))) & 0xFFFFu;
        out[i] = Kind == 1 ? f16_bits_to_float(bits) : bf16_bits_to_float(bits);
      }
    }
  }
};

// Float weights of any width (the SigLIP patch embedding has C·p·p columns): element loads, zero past the row end.
struct FloatAnyFormat {
  static constexpr bool kWholeUnits = false;
  __device__ __forceinline__ static void decode(const WeightView& w, int64_t row, int64_t unit, float (&out)[32]) {
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int64_t c = unit * 32 + i;
      out[i] = c < w.cols ? load_float(w.values, row * w.cols + c, w.scale_kind) : 0.0f;
    }
  }
};

// MLX affine: w = scale·q + bias, q an unsigned Bits-wide code of an LSB-first row bitstream.
template <int Bits>
struct AffineFormat {
  static constexpr bool kWholeUnits = true;
  __device__ __forceinline__ static void decode(const WeightView& w, int64_t row, int64_t unit, float (&out)[32]) {
    uint32_t words[Bits];
    load_words<Bits>(reinterpret_cast<const uint32_t*>(w.values + row * w.row_bytes) + unit * Bits, words);
    const int64_t g = row * w.groups + unit * 32 / w.group_size;
    const float scale = load_float(w.scales, g, w.scale_kind);
    const float bias = load_float(w.biases, g, w.scale_kind);
    constexpr uint32_t kMask = (1u << Bits) - 1u;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int bit = i * Bits;
      uint32_t v = words[bit >> 5] >> (bit & 31);
      if ((bit & 31) + Bits > 32) v |= words[(bit >> 5) + 1] << (32 - (bit & 31));
      out[i] = __fadd_rn(__fmul_rn(scale, static_cast<float>(v & kMask)), bias);
    }
  }
};

// mxfp4 (E2M1 codes, E8M0 scale per 32) and nvfp4 (E2M1 codes, E4M3 scale per 16, times output_scale).
template <bool Nv>
struct Fp4Format {
  static constexpr bool kWholeUnits = true;
  __device__ __forceinline__ static void decode(const WeightView& w, int64_t row, int64_t unit, float (&out)[32]) {
    uint32_t words[4];
    load_words<4>(reinterpret_cast<const uint32_t*>(w.values + row * w.row_bytes) + unit * 4, words);
    const auto* scales = static_cast<const uint8_t*>(w.scales) + row * w.groups;
    float s[2];
    if constexpr (Nv) {
      s[0] = e4m3_to_float(scales[2 * unit]);
      s[1] = e4m3_to_float(scales[2 * unit + 1]);
    } else {
      s[0] = s[1] = e8m0_to_float(scales[unit]);
    }
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const float e = e2m1_to_float(words[i / 8] >> (4 * (i % 8)));
      out[i] = __fmul_rn(__fmul_rn(e, s[i / 16]), w.output_scale);
    }
  }
};

// mxfp8: E4M3 bytes, E8M0 scale per 32.
struct Mxfp8Format {
  static constexpr bool kWholeUnits = true;
  __device__ __forceinline__ static void decode(const WeightView& w, int64_t row, int64_t unit, float (&out)[32]) {
    uint32_t words[8];
    load_words<8>(reinterpret_cast<const uint32_t*>(w.values + row * w.row_bytes) + unit * 8, words);
    const float scale = e8m0_to_float(static_cast<const uint8_t*>(w.scales)[row * w.groups + unit]);
#pragma unroll
    for (int i = 0; i < 32; ++i) out[i] = __fmul_rn(e4m3_to_float((words[i / 4] >> (8 * (i % 4))) & 0xFFu), scale);
  }
};

}  // namespace loom::backend::cuda
