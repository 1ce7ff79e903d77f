#include "backend/cpu/weight_formats.h"

#include <algorithm>
#include <vector>

#include "backend/cpu/quant_kernels.h"
#include "backend/cpu/simd.h"
#include "core/error.h"
#include "weights/quant/quantize.h"

namespace loom::backend::cpu {
namespace {

size_t element_bytes(DType dtype) {
  return static_cast<size_t>(dtype_bits(dtype) / 8);
}

const uint8_t* row_pointer(const weights::Weight& w, int64_t row) {
  return static_cast<const uint8_t*>(w.values.data()) +
         static_cast<size_t>(row) * static_cast<size_t>(w.cols) * element_bytes(w.values.dtype());
}

GemvKernel float_gemv(DType dtype) {
  const SimdKernels& k = active_kernels();
  return dtype == DType::kF32 ? k.gemv_f32 : dtype == DType::kBF16 ? k.gemv_bf16 : k.gemv_f16;
}

void gemv_float(const weights::Weight& w, const float* x, int64_t n, int64_t r0, int64_t r1, float* out, int64_t ldo) {
  float_gemv(w.values.dtype())(row_pointer(w, r0), w.cols, r1 - r0, x, n, w.cols, out, ldo);
}

void decode_float(const weights::Weight& w, int64_t r0, int64_t r1, float* dst) {
  const int64_t count = (r1 - r0) * w.cols;
  const void* src = row_pointer(w, r0);
  switch (w.values.dtype()) {
    case DType::kF32:
      std::copy_n(static_cast<const float*>(src), count, dst);
      break;
    case DType::kBF16:
      active_kernels().bf16_to_f32(src, dst, count);
      break;
    default:
      active_kernels().f16_to_f32(src, dst, count);
      break;
  }
}

constexpr FormatKernels kFloat{"float", gemv_float, decode_float};

}  // namespace

const FormatKernels& format_kernels(const weights::Weight& w, std::string_view op) {
  if (w.quant.mode != weights::QuantMode::kNone) {
    for (const Tensor* t : {&w.values, &w.scales, &w.biases}) {
      if (!t->empty() && t->device().kind != DeviceKind::kCpu) {
        fail(ErrorKind::kInternal, "[{}] quantized weight tensors are not in host memory", op);
      }
    }
    try {
      weights::quant::validate(w, "weight");
    } catch (const Error& e) {
      fail(ErrorKind::kInternal, "[{}] {}", op, e.what());
    }
    return quant_format_kernels(w.quant, active_kernels().isa);
  }
  const DType dtype = w.values.dtype();
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16) {
    fail(ErrorKind::kUnsupported, "[{}] no CPU kernel for float weights stored as {}", op, dtype_name(dtype));
  }
  if (w.values.empty() || w.values.device().kind != DeviceKind::kCpu) {
    fail(ErrorKind::kInternal, "[{}] weight values are not in host memory", op);
  }
  if (w.values.shape() != Shape{w.rows, w.cols}) {
    fail(ErrorKind::kInternal, "[{}] weight values have shape {}, expected [{}, {}]", op,
         shape_string(w.values.shape()), w.rows, w.cols);
  }
  return kFloat;
}

void gemv_by_decoding(DecodeRows decode, const weights::Weight& w, const float* x, int64_t n, int64_t r0, int64_t r1,
                      float* out, int64_t ldo) {
  // A handful of rows per decode keeps the buffer in L1/L2 while amortising the call.
  constexpr int64_t kRowsPerDecode = 4;
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(kRowsPerDecode * w.cols));
  const GemvKernel gemv = active_kernels().gemv_f32;
  for (int64_t r = r0; r < r1; r += kRowsPerDecode) {
    const int64_t rows = std::min(kRowsPerDecode, r1 - r);
    decode(w, r, r + rows, buffer.data());
    gemv(buffer.data(), w.cols, rows, x, n, w.cols, out + (r - r0), ldo);
  }
}

}  // namespace loom::backend::cpu
