// AVX2 + FMA + F16C kernels for every quantized format: affine 2-8 bits, mxfp4, nvfp4 and mxfp8. Like simd_avx2.cpp,
// every function carries the target attribute itself and only runs after isa_supported(Isa::kAvx2).
//
// A chunk of 32 codes becomes four vectors of 8 floats:
//  - 4-bit codes: the low nibbles of 8 bytes are the even codes of 16, the high nibbles the odd ones, so the vectors
//    come out as [evens, odds] of each 16 codes and the activations are reordered once per call to match (a sum does
//    not care about order). E2M1 codes go through a pshufb table holding 2·value as int8 (exact), and the 1/2 is
//    folded into the final multiply.
//  - 2/3/5/6-bit codes: natural order, see AffinePacked.
//  - 8-bit codes: natural order. E4M3 becomes the IEEE half with the same bits shifted into place (e, m → half
//    exponent and mantissa, exact including subnormals, NaN codes forced to NaN), i.e. value/256, widened by F16C;
//    the 256 is folded into the final multiply.
// Loads from the packed bytes are unaligned intrinsics of exactly the bytes of the current chunk.
#include "backend/cpu/quant_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#define LOOM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace loom::backend::cpu {
namespace {

using namespace quant_detail;
using weights::QuantMode;
using weights::Weight;

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

// Decoders of a 32-code chunk for the fused GEMV. kPost is the power of two the stored values are off by.
struct Affine4 {
  static constexpr int kBytes = 16;
  static constexpr bool kPermuted = true;
  static constexpr float kPost = 1.0f;
  LOOM_AVX2 static void chunk(const uint8_t* p, __m256 q[4]) {
    __m128i lo, hi;
    split_nibbles(load16(p), lo, hi);
    q[0] = u8_to_ps(lo);
    q[1] = u8_to_ps(hi);
    q[2] = u8_to_ps(high_half(lo));
    q[3] = u8_to_ps(high_half(hi));
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

// Per 16 activations: the 8 at even positions, then the 8 at odd ones (the order 4-bit chunks decode in).
void permute_pairs(const float* x, int64_t count, float* out) {
  for (int64_t b = 0; b < count; b += 16) {
    for (int j = 0; j < 8; ++j) {
      out[b + j] = x[b + 2 * j];
      out[b + 8 + j] = x[b + 2 * j + 1];
    }
  }
}

float final_factor(const Weight& w) {
  return w.quant.mode == QuantMode::kMxfp4 || w.quant.mode == QuantMode::kNvfp4 ? w.output_scale : 1.0f;
}

// What one GEMV call shares between its blocks of activation rows.
struct GemvArgs {
  const Weight* w;
  const float* xs;    // activations [n, cols], permuted for 4-bit decoders
  const float* sums;  // affine: group sums [n, m]
  float* scales;      // [m] scratch
  float* biases;      // [m] scratch
  float post;         // the final factor
};

// Groups that are whole chunks (affine, mxfp4, mxfp8): N activation rows against weight rows [r0, r1). With several
// chunks per group, N == 1 keeps four independent partial sums per row to hide the FMA latency, N == 2 two, larger N
// gets its parallelism from the rows. One-chunk groups (the mx formats) sum the chunk as a small tree and alternate
// two accumulators between even and odd groups.
template <int N, typename Dec, bool kBias>
LOOM_AVX2 void group_rows(const GemvArgs& a, int64_t i0, int64_t r0, int64_t r1, float* out, int64_t ldo) {
  constexpr int kAcc = N == 1 ? 4 : N == 2 ? 2 : 1;
  const Weight& w = *a.w;
  const SimdKernels& simd = avx2_kernels();
  const int64_t cols = w.cols, m = group_count(w), chunks = w.quant.group_size / 32;
  const float* xs = a.xs + i0 * cols;
  for (int64_t r = r0; r < r1; ++r) {
    row_scales(w, r, 1.0f, simd, a.scales);
    if constexpr (kBias) row_biases(w, r, simd, a.biases);
    const uint8_t* p = packed_row(w, r);
    const float* xg = xs;
    __m256 acc[N][2];
    for (int i = 0; i < N; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    if (chunks == 1) {
      for (int64_t g = 0; g < m; ++g, p += Dec::kBytes, xg += 32) {
        __m256 q[4];
        Dec::chunk(p, q);
        const __m256 s = _mm256_set1_ps(a.scales[g]);
        for (int i = 0; i < N; ++i) {
          const float* x = xg + i * cols;
          const __m256 t0 = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x + 8), _mm256_mul_ps(q[0], _mm256_loadu_ps(x)));
          const __m256 t1 =
              _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + 24), _mm256_mul_ps(q[2], _mm256_loadu_ps(x + 16)));
          acc[i][g & 1] = _mm256_fmadd_ps(_mm256_add_ps(t0, t1), s, acc[i][g & 1]);
        }
      }
    } else {
      for (int64_t g = 0; g < m; ++g) {
        __m256 part[N][kAcc];
        for (int i = 0; i < N; ++i) {
          for (int k = 0; k < kAcc; ++k) part[i][k] = _mm256_setzero_ps();
        }
        for (int64_t c = 0; c < chunks; ++c, p += Dec::kBytes, xg += 32) {
          __m256 q[4];
          Dec::chunk(p, q);
          for (int i = 0; i < N; ++i) {
            for (int k = 0; k < 4; ++k) {
              part[i][k % kAcc] = _mm256_fmadd_ps(q[k], _mm256_loadu_ps(xg + i * cols + 8 * k), part[i][k % kAcc]);
            }
          }
        }
        const __m256 s = _mm256_set1_ps(a.scales[g]);
        for (int i = 0; i < N; ++i) {
          __m256 t = part[i][0];
          for (int k = 1; k < kAcc; ++k) t = _mm256_add_ps(t, part[i][k]);
          acc[i][0] = _mm256_fmadd_ps(t, s, acc[i][0]);
        }
      }
    }
    for (int i = 0; i < N; ++i) {
      float v = hsum(_mm256_add_ps(acc[i][0], acc[i][1])) * a.post;
      if constexpr (kBias) v += simd.dot(a.biases, a.sums + (i0 + i) * m, m);
      out[(i0 + i) * ldo + (r - r0)] = v;
    }
  }
}

// nvfp4: groups of 16, two per 32-code chunk (the first in vectors 0-1, the second in 2-3), each with its own
// accumulator; a row whose length is an odd number of groups ends with a half chunk.
template <int N>
LOOM_AVX2 void nvfp4_rows(const GemvArgs& a, int64_t i0, int64_t r0, int64_t r1, float* out, int64_t ldo) {
  const Weight& w = *a.w;
  const int64_t cols = w.cols, pairs = cols / 32;
  const float* xs = a.xs + i0 * cols;
  for (int64_t r = r0; r < r1; ++r) {
    row_scales(w, r, 1.0f, avx2_kernels(), a.scales);
    const uint8_t* p = packed_row(w, r);
    __m256 acc0[N], acc1[N];
    for (int i = 0; i < N; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (int64_t h = 0; h < pairs; ++h, p += 16) {
      __m256 q[4];
      Fp4::chunk(p, q);
      const __m256 s0 = _mm256_set1_ps(a.scales[2 * h]), s1 = _mm256_set1_ps(a.scales[2 * h + 1]);
      for (int i = 0; i < N; ++i) {
        const float* x = xs + i * cols + 32 * h;
        const __m256 t0 = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x + 8), _mm256_mul_ps(q[0], _mm256_loadu_ps(x)));
        const __m256 t1 = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + 24), _mm256_mul_ps(q[2], _mm256_loadu_ps(x + 16)));
        acc0[i] = _mm256_fmadd_ps(t0, s0, acc0[i]);
        acc1[i] = _mm256_fmadd_ps(t1, s1, acc1[i]);
      }
    }
    if (cols % 32 != 0) {
      __m256 q[2];
      Fp4::half_chunk(p, q);
      const __m256 s = _mm256_set1_ps(a.scales[2 * pairs]);
      for (int i = 0; i < N; ++i) {
        const float* x = xs + i * cols + 32 * pairs;
        const __m256 t = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x + 8), _mm256_mul_ps(q[0], _mm256_loadu_ps(x)));
        acc0[i] = _mm256_fmadd_ps(t, s, acc0[i]);
      }
    }
    for (int i = 0; i < N; ++i) out[(i0 + i) * ldo + (r - r0)] = hsum(_mm256_add_ps(acc0[i], acc1[i])) * a.post;
  }
}

template <template <int> class Rows>
LOOM_AVX2 void for_row_blocks(const GemvArgs& a, int64_t n, int64_t r0, int64_t r1, float* out, int64_t ldo) {
  for (int64_t i0 = 0; i0 < n; i0 += 4) {
    switch (std::min<int64_t>(4, n - i0)) {
      case 4:
        Rows<4>::run(a, i0, r0, r1, out, ldo);
        break;
      case 3:
        Rows<3>::run(a, i0, r0, r1, out, ldo);
        break;
      case 2:
        Rows<2>::run(a, i0, r0, r1, out, ldo);
        break;
      default:
        Rows<1>::run(a, i0, r0, r1, out, ldo);
        break;
    }
  }
}

template <typename Dec, bool kBias>
struct GroupRows {
  template <int N>
  struct Of {
    LOOM_AVX2 static void run(const GemvArgs& a, int64_t i0, int64_t r0, int64_t r1, float* out, int64_t ldo) {
      group_rows<N, Dec, kBias>(a, i0, r0, r1, out, ldo);
    }
  };
};

template <int N>
struct Nvfp4Rows {
  LOOM_AVX2 static void run(const GemvArgs& a, int64_t i0, int64_t r0, int64_t r1, float* out, int64_t ldo) {
    nvfp4_rows<N>(a, i0, r0, r1, out, ldo);
  }
};

// Sets up the per-call state (reordered activations, group sums) and runs the row kernel per block of ≤ 4 rows.
template <typename Dec, bool kBias, template <int> class Rows>
LOOM_AVX2 void gemv(const Weight& w, const float* x, int64_t n, int64_t r0, int64_t r1, float* out, int64_t ldo) {
  Scratch& s = scratch();
  const int64_t cols = w.cols, m = group_count(w);
  GemvArgs a{&w, x, nullptr, reserve(s.scales, m), reserve(s.biases, m), Dec::kPost * final_factor(w)};
  if constexpr (Dec::kPermuted) {
    float* xp = reserve(s.x, n * cols);
    permute_pairs(x, n * cols, xp);
    a.xs = xp;
  }
  if constexpr (kBias) {
    float* sums = reserve(s.sums, n * m);
    group_sums(x, n, cols, w.quant.group_size, sums);
    a.sums = sums;
  }
  for_row_blocks<Rows>(a, n, r0, r1, out, ldo);
}

// ---- Row decoders: natural order, the same float32 operations as dequantize_rows. ----

// scale·q + bias as a rounded multiply then an add (no FMA), like the scalar reference.
template <int Bits>
LOOM_AVX2 void decode_affine(const Weight& w, int64_t r0, int64_t r1, float* dst) {
  Scratch& s = scratch();
  const int64_t m = group_count(w), chunks = w.quant.group_size / 32;
  float* scales = reserve(s.scales, m);
  float* biases = reserve(s.biases, m);
  for (int64_t r = r0; r < r1; ++r) {
    row_scales(w, r, 1.0f, avx2_kernels(), scales);
    row_biases(w, r, avx2_kernels(), biases);
    const uint8_t* p = packed_row(w, r);
    float* o = dst + (r - r0) * w.cols;
    for (int64_t g = 0; g < m; ++g) {
      const __m256 sc = _mm256_set1_ps(scales[g]), bi = _mm256_set1_ps(biases[g]);
      for (int64_t c = 0; c < chunks; ++c, o += 32) {
        __m256 q[4];
        if constexpr (Bits == 4) {
          __m128i lo, hi;
          split_nibbles(load16(p), lo, hi);
          const __m128i first = _mm_unpacklo_epi8(lo, hi), second = _mm_unpackhi_epi8(lo, hi);
          q[0] = u8_to_ps(first);
          q[1] = u8_to_ps(high_half(first));
          q[2] = u8_to_ps(second);
          q[3] = u8_to_ps(high_half(second));
          p += 16;
        } else if constexpr (Bits == 8) {
          Affine8::chunk(p, q);
          p += 32;
        } else {
          AffinePacked<Bits>::chunk(p, q);
          p += 4 * Bits;
        }
        for (int k = 0; k < 4; ++k) {
          __m256 product = _mm256_mul_ps(sc, q[k]);
          // g++ contracts a multiply and an add into an FMA even across intrinsics (C++ defaults to
          // -ffp-contract=fast); the empty asm makes the rounded product opaque so the add stays separate.
          asm("" : "+x"(product));
          _mm256_storeu_ps(o + 8 * k, _mm256_add_ps(product, bi));
        }
      }
    }
  }
}

// mxfp4 / nvfp4, 16 codes (8 bytes) at a time: |2·value| from a table, the sign bit OR-ed in (so code 8 is −0 as in
// the reference), times scale/2 (exact), times output_scale.
LOOM_AVX2 void decode_fp4(const Weight& w, int64_t r0, int64_t r1, float* dst) {
  Scratch& s = scratch();
  const int64_t m = group_count(w), blocks = w.cols / 16, per_group = w.quant.group_size / 16;
  float* scales = reserve(s.scales, m);
  const __m256 t = _mm256_set1_ps(w.output_scale);
  const __m128i magnitude = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, 1, 2, 3, 4, 6, 8, 12);
  const __m256i sign_bit = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  for (int64_t r = r0; r < r1; ++r) {
    row_scales(w, r, 0.5f, avx2_kernels(), scales);
    const uint8_t* p = packed_row(w, r);
    float* o = dst + (r - r0) * w.cols;
    for (int64_t b = 0; b < blocks; ++b, p += 8, o += 16) {
      __m128i lo, hi;
      split_nibbles(load8(p), lo, hi);
      const __m128i codes = _mm_unpacklo_epi8(lo, hi);
      const __m128i mags = _mm_shuffle_epi8(magnitude, codes);
      const __m256 sc = _mm256_set1_ps(scales[b / per_group]);
      for (int k = 0; k < 2; ++k) {
        const __m128i c8 = k == 0 ? codes : high_half(codes);
        const __m128i m8 = k == 0 ? mags : high_half(mags);
        const __m256i sign = _mm256_and_si256(_mm256_slli_epi32(_mm256_cvtepu8_epi32(c8), 28), sign_bit);
        const __m256 v = _mm256_or_ps(u8_to_ps(m8), _mm256_castsi256_ps(sign));
        _mm256_storeu_ps(o + 8 * k, _mm256_mul_ps(_mm256_mul_ps(v, sc), t));
      }
    }
  }
}

// mxfp8: the half-precision value/256, times 256 (exact), times the scale.
LOOM_AVX2 void decode_fp8(const Weight& w, int64_t r0, int64_t r1, float* dst) {
  Scratch& s = scratch();
  const int64_t m = group_count(w);
  float* scales = reserve(s.scales, m);
  const __m256 k256 = _mm256_set1_ps(256.0f);
  for (int64_t r = r0; r < r1; ++r) {
    row_scales(w, r, 1.0f, avx2_kernels(), scales);
    const uint8_t* p = packed_row(w, r);
    float* o = dst + (r - r0) * w.cols;
    for (int64_t g = 0; g < m; ++g, p += 32, o += 32) {
      __m256 q[4];
      Fp8::chunk(p, q);
      const __m256 sc = _mm256_set1_ps(scales[g]);
      for (int k = 0; k < 4; ++k) _mm256_storeu_ps(o + 8 * k, _mm256_mul_ps(_mm256_mul_ps(q[k], k256), sc));
    }
  }
}

constexpr FormatKernels kAffine4{"affine-4 avx2", gemv<Affine4, true, GroupRows<Affine4, true>::Of>, decode_affine<4>};
constexpr FormatKernels kAffine8{"affine-8 avx2", gemv<Affine8, true, GroupRows<Affine8, true>::Of>, decode_affine<8>};
template <int Bits>
constexpr FormatKernels kAffinePacked{"affine avx2",
                                      gemv<AffinePacked<Bits>, true, GroupRows<AffinePacked<Bits>, true>::template Of>,
                                      decode_affine<Bits>};
constexpr FormatKernels kMxfp4{"mxfp4 avx2", gemv<Fp4, false, GroupRows<Fp4, false>::Of>, decode_fp4};
constexpr FormatKernels kNvfp4{"nvfp4 avx2", gemv<Fp4, false, Nvfp4Rows>, decode_fp4};
constexpr FormatKernels kMxfp8{"mxfp8 avx2", gemv<Fp8, false, GroupRows<Fp8, false>::Of>, decode_fp8};

}  // namespace

const FormatKernels* avx2_quant_kernels(const weights::QuantSpec& spec) {
  switch (spec.mode) {
    case QuantMode::kAffine:
      switch (spec.bits) {
        case 2:
          return &kAffinePacked<2>;
        case 3:
          return &kAffinePacked<3>;
        case 4:
          return &kAffine4;
        case 5:
          return &kAffinePacked<5>;
        case 6:
          return &kAffinePacked<6>;
        case 8:
          return &kAffine8;
        default:
          return nullptr;
      }
    case QuantMode::kMxfp4:
      return &kMxfp4;
    case QuantMode::kNvfp4:
      return &kNvfp4;
    case QuantMode::kMxfp8:
      return &kMxfp8;
    case QuantMode::kNone:
      break;
  }
  return nullptr;
}

}  // namespace loom::backend::cpu

#else  // not x86-64: no AVX2 kernels.

namespace loom::backend::cpu {
const FormatKernels* avx2_quant_kernels(const weights::QuantSpec&) {
  return nullptr;
}
}  // namespace loom::backend::cpu

#endif
