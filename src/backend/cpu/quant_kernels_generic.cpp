// Portable kernels for every quantized format: one group at a time, the group's codes are unpacked into a small f32
// buffer (compile-time shifts per bit width) and dotted with each activation row. Plain loops that the baseline
// compiler vectorises; the AVX2 file replaces the widths that matter most.
#include <algorithm>
#include <cstring>

#include "backend/cpu/quant_kernels.h"
#include "core/error.h"
#include "core/float_formats.h"

namespace loom::backend::cpu {
namespace {

using namespace quant_detail;
using weights::QuantMode;
using weights::Weight;

// `count` (a multiple of 32) affine codes of Bits bits starting at the word-aligned `p`, as floats. 32 codes fill
// exactly Bits words, so inside a chunk every shift is a compile-time constant.
template <int Bits>
void unpack_affine(const uint8_t* p, int count, float* q) {
  constexpr uint32_t kMask = (1u << Bits) - 1u;
  for (int chunk = 0; chunk < count / 32; ++chunk, p += 4 * Bits, q += 32) {
    uint32_t words[Bits + 1] = {};
    std::memcpy(words, p, 4 * Bits);
    for (int i = 0; i < 32; ++i) {
      const int bit = i * Bits;
      uint64_t window = words[bit >> 5] >> (bit & 31);
      if ((bit & 31) + Bits > 32) window |= static_cast<uint64_t>(words[(bit >> 5) + 1]) << (32 - (bit & 31));
      q[i] = static_cast<float>(static_cast<uint32_t>(window) & kMask);
    }
  }
}

// `count` E2M1 codes, low nibble first.
void unpack_fp4(const uint8_t* p, int count, float* q) {
  for (int k = 0; k < count / 2; ++k) {
    q[2 * k] = kE2M1Values[p[k] & 0xF];
    q[2 * k + 1] = kE2M1Values[p[k] >> 4];
  }
}

// `count` E4M3 bytes.
void unpack_fp8(const uint8_t* p, int count, float* q) {
  const float* table = e4m3_values();
  for (int k = 0; k < count; ++k) q[k] = table[p[k]];
}

using Unpack = void (*)(const uint8_t*, int, float*);

template <QuantMode Mode, int Bits>
constexpr Unpack unpacker() {
  if constexpr (Mode == QuantMode::kAffine) {
    return unpack_affine<Bits>;
  } else if constexpr (Mode == QuantMode::kMxfp8) {
    return unpack_fp8;
  } else {
    return unpack_fp4;
  }
}

// Eight independent partial sums: the compiler keeps them in two baseline SSE registers.
float dot(const float* a, const float* b, int64_t len) {
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  }
  for (; i < len; ++i) s[0] += a[i] * b[i];
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

// The factor applied after the group sums: output_scale for the fp4 formats (as dequantize_rows does), 1 otherwise.
float final_factor(const Weight& w) {
  return w.quant.mode == QuantMode::kMxfp4 || w.quant.mode == QuantMode::kNvfp4 ? w.output_scale : 1.0f;
}

template <QuantMode Mode, int Bits>
void gemv(const Weight& w, const float* x, int64_t n, int64_t r0, int64_t r1, float* out, int64_t ldo) {
  constexpr Unpack kUnpack = unpacker<Mode, Bits>();
  constexpr bool kBias = Mode == QuantMode::kAffine;
  const SimdKernels& simd = generic_kernels();
  const int group = w.quant.group_size;
  const int64_t m = group_count(w), cols = w.cols;
  const int64_t group_bytes = group * w.quant.bits / 8;
  Scratch& s = scratch();
  float* sums = nullptr;
  if constexpr (kBias) {
    sums = reserve(s.sums, n * m);
    group_sums(x, n, cols, group, sums);
  }
  float* scales = reserve(s.scales, m);
  float* biases = reserve(s.biases, m);
  float* q = reserve(s.codes, group);
  const float factor = final_factor(w);
  for (int64_t r = r0; r < r1; ++r) {
    row_scales(w, r, 1.0f, simd, scales);
    if constexpr (kBias) row_biases(w, r, simd, biases);
    const uint8_t* p = packed_row(w, r);
    for (int64_t i0 = 0; i0 < n; i0 += 4) {
      const int64_t rows = std::min<int64_t>(4, n - i0);
      float total[4] = {};
      for (int64_t g = 0; g < m; ++g) {
        kUnpack(p + g * group_bytes, group, q);
        for (int64_t i = 0; i < rows; ++i) total[i] += dot(x + (i0 + i) * cols + g * group, q, group) * scales[g];
      }
      for (int64_t i = 0; i < rows; ++i) {
        float v = total[i] * factor;
        if constexpr (kBias) v += dot(biases, sums + (i0 + i) * m, m);
        out[(i0 + i) * ldo + (r - r0)] = v;
      }
    }
  }
}

// Same float32 operations as weights::quant::dequantize_rows, so the result is bit-identical.
template <QuantMode Mode, int Bits>
void decode(const Weight& w, int64_t r0, int64_t r1, float* dst) {
  constexpr Unpack kUnpack = unpacker<Mode, Bits>();
  const SimdKernels& simd = generic_kernels();
  const int group = w.quant.group_size;
  const int64_t m = group_count(w);
  const int64_t group_bytes = group * w.quant.bits / 8;
  Scratch& s = scratch();
  float* scales = reserve(s.scales, m);
  float* biases = reserve(s.biases, m);
  const float factor = final_factor(w);
  for (int64_t r = r0; r < r1; ++r) {
    row_scales(w, r, 1.0f, simd, scales);
    if constexpr (Mode == QuantMode::kAffine) row_biases(w, r, simd, biases);
    const uint8_t* p = packed_row(w, r);
    float* o = dst + (r - r0) * w.cols;
    for (int64_t g = 0; g < m; ++g, o += group) {
      kUnpack(p + g * group_bytes, group, o);
      const float scale = scales[g];
      if constexpr (Mode == QuantMode::kAffine) {
        const float bias = biases[g];
        for (int j = 0; j < group; ++j) o[j] = scale * o[j] + bias;
      } else if constexpr (Mode == QuantMode::kMxfp8) {
        for (int j = 0; j < group; ++j) o[j] = o[j] * scale;
      } else {
        for (int j = 0; j < group; ++j) o[j] = o[j] * scale * factor;
      }
    }
  }
}

template <QuantMode Mode, int Bits>
constexpr FormatKernels kernels(std::string_view name) {
  return {name, gemv<Mode, Bits>, decode<Mode, Bits>};
}

constexpr FormatKernels kAffine2 = kernels<QuantMode::kAffine, 2>("affine-2");
constexpr FormatKernels kAffine3 = kernels<QuantMode::kAffine, 3>("affine-3");
constexpr FormatKernels kAffine4 = kernels<QuantMode::kAffine, 4>("affine-4");
constexpr FormatKernels kAffine5 = kernels<QuantMode::kAffine, 5>("affine-5");
constexpr FormatKernels kAffine6 = kernels<QuantMode::kAffine, 6>("affine-6");
constexpr FormatKernels kAffine8 = kernels<QuantMode::kAffine, 8>("affine-8");
constexpr FormatKernels kMxfp4 = kernels<QuantMode::kMxfp4, 4>("mxfp4");
constexpr FormatKernels kMxfp8 = kernels<QuantMode::kMxfp8, 8>("mxfp8");
constexpr FormatKernels kNvfp4 = kernels<QuantMode::kNvfp4, 4>("nvfp4");

}  // namespace

const FormatKernels& generic_quant_kernels(const weights::QuantSpec& spec) {
  switch (spec.mode) {
    case QuantMode::kAffine:
      switch (spec.bits) {
        case 2:
          return kAffine2;
        case 3:
          return kAffine3;
        case 4:
          return kAffine4;
        case 5:
          return kAffine5;
        case 6:
          return kAffine6;
        case 8:
          return kAffine8;
        default:
          break;
      }
      break;
    case QuantMode::kMxfp4:
      return kMxfp4;
    case QuantMode::kMxfp8:
      return kMxfp8;
    case QuantMode::kNvfp4:
      return kNvfp4;
    case QuantMode::kNone:
      break;
  }
  fail(ErrorKind::kUnsupported, "no CPU kernel for {}", weights::quant_spec_name(spec));
}

}  // namespace loom::backend::cpu
