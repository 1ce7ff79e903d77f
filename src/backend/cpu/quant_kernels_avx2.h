#pragma once
// The AVX2 decoders of quantized codes shared by the fused GEMV and the row decoders (quant_kernels_avx2.cpp). x86-64
// only; every function carries the target attribute and may only run after isa_supported(Isa::kAvx2).
//
// A chunk of 32 codes becomes four vectors of 8 floats:
//  - affine 4-bit codes: natural order, see Affine4.
//  - E2M1 codes: the low nibbles of 8 bytes are the even codes of 16, the high nibbles the odd ones, so the vectors
//    come out as [evens, odds] of each 16 codes and the activations are reordered once per call to match (a sum does
//    not care about order). A pshufb table turns each code into 2·value as int8 (exact), and the 1/2 is folded into
//    the final multiply.
//  - 2/3/5/6-bit codes: natural order, see AffinePacked.
//  - 8-bit codes: natural order. E4M3 becomes the IEEE half with the same bits shifted into place (e, m → half
//    exponent and mantissa, exact including subnormals, NaN codes forced to NaN), i.e. value/256, widened by F16C;
//    the 256 is folded into the final multiply.
// Loads from the packed bytes are unaligned intrinsics of exactly the bytes of the current chunk.
#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#ifndef LOOM_AVX2
#define LOOM_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace loom::backend::cpu::quant_avx2 {

LOOM_AVX2 inline float hsum(__m256 v) {
  const __m128 pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 quad = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
  return _mm_cvtss_f32(_mm_add_ss(quad, _mm_movehdup_ps(quad)));
}

LOOM_AVX2 inline __m256 u8_to_ps(__m128i bytes) {  // the low 8 bytes, unsigned
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}
LOOM_AVX2 inline __m256 i8_to_ps(__m128i bytes) {  // the low 8 bytes, signed
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
}
LOOM_AVX2 inline __m128i high_half(__m128i v) {
  return _mm_unpackhi_epi64(v, v);
}
LOOM_AVX2 inline __m128i load16(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
LOOM_AVX2 inline __m128i load8(const uint8_t* p) {
  return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
}

// Low and high nibbles of each byte.
LOOM_AVX2 inline void split_nibbles(__m128i b, __m128i& lo, __m128i& hi) {
  const __m128i mask = _mm_set1_epi8(0x0F);
  lo = _mm_and_si128(b, mask);
  hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
}

// 2·E2M1 value of each code, as int8.
LOOM_AVX2 inline __m128i e2m1_doubled(__m128i codes) {
  return _mm_shuffle_epi8(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12), codes);
}

// 16 E4M3 bytes → 16 IEEE half bit patterns of value/256.
LOOM_AVX2 inline __m256i e4m3_to_half(__m128i bytes) {
  const __m256i v = _mm256_cvtepu8_epi16(bytes);
  const __m256i em = _mm256_and_si256(v, _mm256_set1_epi16(0x7F));
  const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x80)), 8);
  const __m256i half = _mm256_or_si256(_mm256_slli_epi16(em, 7), sign);
  const __m256i nan = _mm256_cmpeq_epi16(em, _mm256_set1_epi16(0x7F));
  return _mm256_or_si256(half, _mm256_and_si256(nan, _mm256_set1_epi16(0x7E00)));
}

// Decoders of a 32-code chunk (kBytes packed bytes) into q[0..3]. kPermuted: the order is [evens, odds] per 16 codes
// instead of natural. kPost: the power of two the decoded values are off by (applied after the sums).

// Affine 4-bit: each 32-bit word holds 8 codes; broadcast it to all lanes and shift lane i right by 4·i. Natural order
// and no shuffle-port work, which limits the nibble-splitting form (measured about 1.5x slower).
struct Affine4 {
  static constexpr int kBytes = 16;
  static constexpr bool kPermuted = false;
  static constexpr float kPost = 1.0f;
  LOOM_AVX2 static void chunk(const uint8_t* p, __m256 q[4]) {
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i mask = _mm256_set1_epi32(0xF);
    for (int k = 0; k < 4; ++k) {
      uint32_t word;
      std::memcpy(&word, p + 4 * k, 4);
      const __m256i codes = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(word)), shifts);
      q[k] = _mm256_cvtepi32_ps(_mm256_and_si256(codes, mask));
    }
  }
};

struct Fp4 {
  static constexpr int kBytes = 16;
  static constexpr bool kPermuted = true;
  static constexpr float kPost = 0.5f;
  LOOM_AVX2 static void chunk(const uint8_t* p, __m256 q[4]) {
    __m128i lo, hi;
    split_nibbles(load16(p), lo, hi);
    lo = e2m1_doubled(lo);
    hi = e2m1_doubled(hi);
    q[0] = i8_to_ps(lo);
    q[1] = i8_to_ps(hi);
    q[2] = i8_to_ps(high_half(lo));
    q[3] = i8_to_ps(high_half(hi));
  }
  // 16 codes from 8 bytes: [evens, odds].
  LOOM_AVX2 static void half_chunk(const uint8_t* p, __m256 q[2]) {
    __m128i lo, hi;
    split_nibbles(load8(p), lo, hi);
    q[0] = i8_to_ps(e2m1_doubled(lo));
    q[1] = i8_to_ps(e2m1_doubled(hi));
  }
};

struct Affine8 {
  static constexpr int kBytes = 32;
  static constexpr bool kPermuted = false;
  static constexpr float kPost = 1.0f;
  LOOM_AVX2 static void chunk(const uint8_t* p, __m256 q[4]) {
    for (int k = 0; k < 4; ++k) q[k] = u8_to_ps(load8(p + 8 * k));
  }
};

// 2, 3, 5 and 6 bits: a chunk is 4·Bits bytes, loaded exactly (no byte past it) into one or two 16-byte registers: the
// first 16 bytes, and for 5/6 bits also the last 16. Per 8 codes a byte shuffle moves the one or two bytes holding
// code i into 32-bit lane i, then a per-lane shift and a mask finish it.
template <int Bits>
struct AffinePacked {
  static constexpr int kBytes = 4 * Bits;
  static constexpr bool kPermuted = false;
  static constexpr float kPost = 1.0f;
  static constexpr bool kTwoLoads = kBytes > 16;
  static constexpr bool uses_tail(int k) { return kTwoLoads && k >= 2; }
  struct Tables {
    alignas(32) int8_t shuffle[4][32];
    alignas(32) int32_t shift[8];
  };
  static constexpr Tables make_tables() {
    Tables t{};
    for (int k = 0; k < 4; ++k) {
      const int base = uses_tail(k) ? kBytes - 16 : 0;
      for (int i = 0; i < 8; ++i) {
        const int bit = Bits * (8 * k + i);
        const bool two_bytes = bit % 8 + Bits > 8;
        for (int j = 0; j < 4; ++j) {
          const bool used = j == 0 || (j == 1 && two_bytes);
          t.shuffle[k][4 * i + j] = used ? static_cast<int8_t>(bit / 8 + j - base) : int8_t{-128};
        }
        t.shift[i] = bit % 8;  // the same for every k: 8 codes span whole bytes
      }
    }
    return t;
  }
  static constexpr Tables kTables = make_tables();

  LOOM_AVX2 static __m128i load_head(const uint8_t* p) {
    if constexpr (Bits == 2) {
      return load8(p);
    } else if constexpr (Bits == 3) {
      uint32_t tail;
      std::memcpy(&tail, p + 8, 4);
      return _mm_insert_epi32(load8(p), static_cast<int>(tail), 2);
    } else {
      return load16(p);
    }
  }
  LOOM_AVX2 static void chunk(const uint8_t* p, __m256 q[4]) {
    const __m256i head = _mm256_broadcastsi128_si256(load_head(p));
    __m256i tail = head;
    if constexpr (kTwoLoads) tail = _mm256_broadcastsi128_si256(load16(p + kBytes - 16));
    const __m256i shift = _mm256_load_si256(reinterpret_cast<const __m256i*>(kTables.shift));
    const __m256i mask = _mm256_set1_epi32((1 << Bits) - 1);
    for (int k = 0; k < 4; ++k) {
      const __m256i control = _mm256_load_si256(reinterpret_cast<const __m256i*>(kTables.shuffle[k]));
      const __m256i bytes = _mm256_shuffle_epi8(uses_tail(k) ? tail : head, control);
      q[k] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(bytes, shift), mask));
    }
  }
};

struct Fp8 {
  static constexpr int kBytes = 32;
  static constexpr bool kPermuted = false;
  static constexpr float kPost = 256.0f;
  LOOM_AVX2 static void chunk(const uint8_t* p, __m256 q[4]) {
    for (int k = 0; k < 2; ++k) {
      const __m256i half = e4m3_to_half(load16(p + 16 * k));
      q[2 * k] = _mm256_cvtph_ps(_mm256_castsi256_si128(half));
      q[2 * k + 1] = _mm256_cvtph_ps(_mm256_extracti128_si256(half, 1));
    }
  }
};

}  // namespace loom::backend::cpu::quant_avx2

#endif
