// The portable kernels: plain loops any x86-64 or ARM compiler turns into its baseline vector code.
#include <atomic>
#include <cstring>

#include "backend/cpu/simd.h"

namespace loom::backend::cpu {
namespace {

template <typename Load>
void gemv_rows(const void* w, int64_t ld_w, int64_t rows, const float* x, int64_t n, int64_t len, float* out,
               int64_t ldo, Load load) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * len;
      // Four partial sums break the dependency chain; the order differs from the reference but stays within the
      // same rounding-error bound.
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t c = 0;
      for (; c + 4 <= len; c += 4) {
        s0 += xi[c] * load(w, r * ld_w + c);
        s1 += xi[c + 1] * load(w, r * ld_w + c + 1);
        s2 += xi[c + 2] * load(w, r * ld_w + c + 2);
        s3 += xi[c + 3] * load(w, r * ld_w + c + 3);
      }
      for (; c < len; ++c) s0 += xi[c] * load(w, r * ld_w + c);
      out[i * ldo + r] = (s0 + s1) + (s2 + s3);
    }
  }
}

float load_f32(const void* w, int64_t i) {
  return static_cast<const float*>(w)[i];
}
uint16_t load_u16(const void* w, int64_t i) {
  uint16_t bits;
  std::memcpy(&bits, static_cast<const uint8_t*>(w) + i * 2, 2);
  return bits;
}
float load_bf16(const void* w, int64_t i) {
  return bf16_to_float(load_u16(w, i));
}
float load_f16(const void* w, int64_t i) {
  return f16_to_float(load_u16(w, i));
}

void gemv_f32(const void* w, int64_t ld_w, int64_t rows, const float* x, int64_t n, int64_t len, float* out,
              int64_t ldo) {
  gemv_rows(w, ld_w, rows, x, n, len, out, ldo, load_f32);
}
void gemv_bf16(const void* w, int64_t ld_w, int64_t rows, const float* x, int64_t n, int64_t len, float* out,
               int64_t ldo) {
  gemv_rows(w, ld_w, rows, x, n, len, out, ldo, load_bf16);
}
void gemv_f16(const void* w, int64_t ld_w, int64_t rows, const float* x, int64_t n, int64_t len, float* out,
              int64_t ldo) {
  gemv_rows(w, ld_w, rows, x, n, len, out, ldo, load_f16);
}

void bf16_to_f32(const void* src, float* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] = load_bf16(src, i);
}
void f16_to_f32(const void* src, float* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] = load_f16(src, i);
}

float dot(const float* a, const float* b, int64_t len) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= len; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < len; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

void axpy(float a, const float* x, float* y, int64_t len) {
  for (int64_t i = 0; i < len; ++i) y[i] += a * x[i];
}

std::atomic<int> forced{-1};

}  // namespace

float bf16_to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, 4);
  return value;
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf / nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 → 127
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal half: shift the mantissa up until its leading one becomes the implicit bit.
    exponent = 113;
    while ((mantissa & 0x400) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
  }
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

const SimdKernels& generic_kernels() {
  static const SimdKernels table{Isa::kGeneric, gemv_f32, gemv_bf16, gemv_f16, bf16_to_f32, f16_to_f32, dot, axpy};
  return table;
}

bool isa_supported(Isa isa) {
  if (isa == Isa::kGeneric) return true;
#if defined(__x86_64__)
  // Every AVX2 processor also has F16C (it arrived one generation earlier), and clang cannot query "f16c" here.
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2;
#else
  return false;
#endif
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out{Isa::kGeneric};
  if (isa_supported(Isa::kAvx2)) out.push_back(Isa::kAvx2);
  return out;
}

void force_isa(std::optional<Isa> isa) {
  forced.store(isa ? static_cast<int>(*isa) : -1);
}

const SimdKernels& active_kernels() {
  const int f = forced.load(std::memory_order_relaxed);
  if (f == static_cast<int>(Isa::kGeneric)) return generic_kernels();
  if (isa_supported(Isa::kAvx2)) return avx2_kernels();
  return generic_kernels();
}

}  // namespace loom::backend::cpu
