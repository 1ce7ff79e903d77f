// AVX2 + FMA + F16C kernels. Every function carries the target attribute itself (the build has no -march flags), so
// this file compiles anywhere and its code only runs after simd_generic.cpp checked the CPU.
#include "backend/cpu/simd.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define LOOM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace loom::backend::cpu {
namespace {

struct F32Load {
  LOOM_AVX2 static __m256 load8(const void* w, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(w) + i); }
  static float load1(const void* w, int64_t i) { return static_cast<const float*>(w)[i]; }
};

struct Bf16Load {
  LOOM_AVX2 static __m256 load8(const void* w, int64_t i) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
  }
  static float load1(const void* w, int64_t i) {
    uint16_t bits;
    __builtin_memcpy(&bits, static_cast<const uint16_t*>(w) + i, 2);
    return bf16_to_float(bits);
  }
};

struct F16Load {
  LOOM_AVX2 static __m256 load8(const void* w, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i)));
  }
  static float load1(const void* w, int64_t i) {
    uint16_t bits;
    __builtin_memcpy(&bits, static_cast<const uint16_t*>(w) + i, 2);
    return f16_to_float(bits);
  }
};

LOOM_AVX2 inline float horizontal_sum(__m256 v) {
  const __m128 pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 quad = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
  return _mm_cvtss_f32(_mm_add_ss(quad, _mm_movehdup_ps(quad)));
}

// One weight row (starting at element `base`) against N activation rows: the weight is loaded once per 16 columns and
// multiplied into every activation row, so decode reads each weight byte exactly once.
template <int N, typename Load>
LOOM_AVX2 void dot_row(const void* w, int64_t base, const float* x, int64_t len, float* out, int64_t ldo) {
  __m256 acc0[N], acc1[N];
  for (int i = 0; i < N; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= len; c += 16) {
    const __m256 w0 = Load::load8(w, base + c);
    const __m256 w1 = Load::load8(w, base + c + 8);
    for (int i = 0; i < N; ++i) {
      acc0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i * len + c), acc0[i]);
      acc1[i] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i * len + c + 8), acc1[i]);
    }
  }
  for (; c + 8 <= len; c += 8) {
    const __m256 w0 = Load::load8(w, base + c);
    for (int i = 0; i < N; ++i) acc0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i * len + c), acc0[i]);
  }
  for (int i = 0; i < N; ++i) {
    float sum = horizontal_sum(_mm256_add_ps(acc0[i], acc1[i]));
    for (int64_t t = c; t < len; ++t) sum += x[i * len + t] * Load::load1(w, base + t);
    out[i * ldo] = sum;
  }
}

template <typename Load>
LOOM_AVX2 void gemv(const void* w, int64_t ld_w, int64_t rows, const float* x, int64_t n, int64_t len, float* out,
                    int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) dot_row<4, Load>(w, r * ld_w, x + i * len, len, out + i * ldo + r, ldo);
    switch (n - i) {
      case 3:
        dot_row<3, Load>(w, r * ld_w, x + i * len, len, out + i * ldo + r, ldo);
        break;
      case 2:
        dot_row<2, Load>(w, r * ld_w, x + i * len, len, out + i * ldo + r, ldo);
        break;
      case 1:
        dot_row<1, Load>(w, r * ld_w, x + i * len, len, out + i * ldo + r, ldo);
        break;
      default:
        break;
    }
  }
}

template <typename Load>
LOOM_AVX2 void convert(const void* src, float* dst, int64_t count) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, Load::load8(src, i));
  for (; i < count; ++i) dst[i] = Load::load1(src, i);
}

LOOM_AVX2 float dot(const float* a, const float* b, int64_t len) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= len; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float sum = horizontal_sum(_mm256_add_ps(acc0, acc1));
  for (; i < len; ++i) sum += a[i] * b[i];
  return sum;
}

LOOM_AVX2 void axpy(float a, const float* x, float* y, int64_t len) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < len; ++i) y[i] += a * x[i];
}

}  // namespace

const SimdKernels& avx2_kernels() {
  static const SimdKernels table{
      Isa::kAvx2, gemv<F32Load>, gemv<Bf16Load>, gemv<F16Load>, convert<Bf16Load>, convert<F16Load>, dot, axpy};
  return table;
}

}  // namespace loom::backend::cpu

#else  // not x86-64: no AVX2 table; isa_supported() never reports it.

namespace loom::backend::cpu {
const SimdKernels& avx2_kernels() {
  return generic_kernels();
}
}  // namespace loom::backend::cpu

#endif
