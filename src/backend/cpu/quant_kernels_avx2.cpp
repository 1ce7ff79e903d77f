// AVX2 + FMA + F16C kernels for every quantized format: affine 2-8 bits, mxfp4, nvfp4 and mxfp8. Like simd_avx2.cpp,
// every function carries the target attribute itself and only runs after isa_supported(Isa::kAvx2). The chunk
// decoders live in quant_kernels_avx2.h.
#include "backend/cpu/quant_kernels.h"

#if defined(__x86_64__)
#include <algorithm>

#include "backend/cpu/quant_kernels_avx2.h"

namespace loom::backend::cpu {
namespace {

using namespace quant_detail;
using namespace quant_avx2;
using weights::QuantMode;
using weights::Weight;

// Per 16 activations: the 8 at even positions, then the 8 at odd ones (the order E2M1 chunks decode in).
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

// Weight rows whose scales (and biases) are converted in one call: the per-row conversion calls cost about as much
// as a short row's dot product at batch 1. 32 rows of the widest layers' scales stay well inside L1.
constexpr int64_t kScaleRows = 32;

// Σ a[g]·b[g] over a row's few groups, inline (the bias term of an affine row).
LOOM_AVX2 inline float short_dot(const float* a, const float* b, int64_t m) {
  __m256 acc = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= m; g += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + g), _mm256_loadu_ps(b + g), acc);
  float sum = hsum(acc);
  for (; g < m; ++g) sum += a[g] * b[g];
  return sum;
}

// What one GEMV call shares between its blocks of activation rows.
struct GemvArgs {
  const Weight* w;
  const float* xs;    // activations [n, cols], permuted for the E2M1 decoder
  const float* sums;  // affine: group sums [n, m]
  float* scales;      // [kScaleRows, m] scratch
  float* biases;      // [kScaleRows, m] scratch
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
    const int64_t in_block = (r - r0) % kScaleRows;
    if (in_block == 0) {
      const int64_t rows = std::min(kScaleRows, r1 - r);
      row_scales(w, r, 1.0f, simd, a.scales, rows);
      if constexpr (kBias) row_biases(w, r, simd, a.biases, rows);
    }
    const float* scales = a.scales + in_block * m;
    const uint8_t* p = packed_row(w, r);
    const float* xg = xs;
    __m256 acc[N][2];
    for (int i = 0; i < N; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    if (chunks == 1) {
      for (int64_t g = 0; g < m; ++g, p += Dec::kBytes, xg += 32) {
        __m256 q[4];
        Dec::chunk(p, q);
        const __m256 s = _mm256_set1_ps(scales[g]);
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
        const __m256 s = _mm256_set1_ps(scales[g]);
        for (int i = 0; i < N; ++i) {
          __m256 t = part[i][0];
          for (int k = 1; k < kAcc; ++k) t = _mm256_add_ps(t, part[i][k]);
          acc[i][0] = _mm256_fmadd_ps(t, s, acc[i][0]);
        }
      }
    }
    for (int i = 0; i < N; ++i) {
      float v = hsum(_mm256_add_ps(acc[i][0], acc[i][1])) * a.post;
      if constexpr (kBias) v += short_dot(a.biases + in_block * m, a.sums + (i0 + i) * m, m);
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
  const int64_t m = group_count(w);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t in_block = (r - r0) % kScaleRows;
    if (in_block == 0) row_scales(w, r, 1.0f, avx2_kernels(), a.scales, std::min(kScaleRows, r1 - r));
    const float* scales = a.scales + in_block * m;
    const uint8_t* p = packed_row(w, r);
    __m256 acc0[N], acc1[N];
    for (int i = 0; i < N; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (int64_t h = 0; h < pairs; ++h, p += 16) {
      __m256 q[4];
      Fp4::chunk(p, q);
      const __m256 s0 = _mm256_set1_ps(scales[2 * h]), s1 = _mm256_set1_ps(scales[2 * h + 1]);
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
      const __m256 s = _mm256_set1_ps(scales[2 * pairs]);
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
  const int64_t block = std::min(kScaleRows, r1 - r0) * m;
  GemvArgs a{
      &w, x, nullptr, reserve(s.scales, block), reserve(s.biases, kBias ? block : 0), Dec::kPost * final_factor(w)};
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
          Affine4::chunk(p, q);
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
