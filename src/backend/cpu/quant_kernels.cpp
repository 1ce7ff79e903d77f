// The quantized-format registry and the helpers every kernel shares: scale and bias decoding, group sums of the
// activations, per-thread scratch.
#include "backend/cpu/quant_kernels.h"

#include <array>
#include <cstring>

#include "core/error.h"
#include "core/float_formats.h"

namespace loom::backend::cpu {
namespace quant_detail {
namespace {

std::array<float, 256> byte_table(float (*decode)(uint8_t)) {
  std::array<float, 256> t{};
  for (int i = 0; i < 256; ++i) t[static_cast<size_t>(i)] = decode(static_cast<uint8_t>(i));
  return t;
}

const std::array<float, 256>& e8m0_table() {
  static const std::array<float, 256> table = byte_table(e8m0_to_float);
  return table;
}

const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = byte_table(e4m3_to_float);
  return table;
}

// Converts `count` F32/F16/BF16 entries of `t` starting at element `index`.
void read_floats(const Tensor& t, int64_t index, int64_t count, const SimdKernels& simd, float* out) {
  const auto* bytes = static_cast<const uint8_t*>(t.data());
  switch (t.dtype()) {
    case DType::kF32:
      std::memcpy(out, bytes + index * 4, static_cast<size_t>(count) * 4);
      return;
    case DType::kBF16:
      simd.bf16_to_f32(bytes + index * 2, out, count);
      return;
    case DType::kF16:
      simd.f16_to_f32(bytes + index * 2, out, count);
      return;
    default:
      fail(ErrorKind::kInternal, "affine scales of dtype {}", dtype_name(t.dtype()));
  }
}

}  // namespace

const float* e4m3_values() {
  return e4m3_table().data();
}

void row_scales(const weights::Weight& w, int64_t r, float factor, const SimdKernels& simd, float* out, int64_t rows) {
  const int64_t m = group_count(w) * rows;  // scales are stored [rows, groups]: a block of rows is contiguous
  if (w.quant.mode == weights::QuantMode::kAffine) {
    read_floats(w.scales, r * group_count(w), m, simd, out);
    if (factor != 1.0f) {
      for (int64_t g = 0; g < m; ++g) out[g] *= factor;
    }
    return;
  }
  const float* table = w.quant.mode == weights::QuantMode::kNvfp4 ? e4m3_table().data() : e8m0_table().data();
  const uint8_t* bytes = static_cast<const uint8_t*>(w.scales.data()) + r * group_count(w);
  for (int64_t g = 0; g < m; ++g) out[g] = table[bytes[g]] * factor;
}

void row_biases(const weights::Weight& w, int64_t r, const SimdKernels& simd, float* out, int64_t rows) {
  const int64_t m = group_count(w);
  read_floats(w.biases, r * m, m * rows, simd, out);
}

void group_sums(const float* x, int64_t n, int64_t cols, int group, float* sums) {
  const int64_t m = cols / group;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t g = 0; g < m; ++g) {
      const float* xg = x + i * cols + g * group;
      float s = 0.0f;
      for (int j = 0; j < group; ++j) s += xg[j];
      sums[i * m + g] = s;
    }
  }
}

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace quant_detail

const FormatKernels& quant_format_kernels(const weights::QuantSpec& spec, Isa isa) {
  if (isa == Isa::kAvx2) {
    if (const FormatKernels* k = avx2_quant_kernels(spec)) return *k;
  }
  return generic_quant_kernels(spec);
}

}  // namespace loom::backend::cpu
