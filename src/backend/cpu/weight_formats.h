#pragma once
// How the CPU reads each weight storage format. A format is two functions: a fused GEMV over a block of rows (the
// decode path, bound by memory bandwidth) and a decoder of a row block to f32 (feeding OpenBLAS in the prefill path
// and the embedding gather). A format with only a decoder can use gemv_by_decoding. Adding a quantized format means
// adding one entry to format_kernels() (quantized formats: quant_kernels.h); the matmul loops do not change.

#include <cstdint>
#include <string_view>

#include "weights/weight.h"

namespace loom::backend::cpu {

// Rows [r0, r1) of w decoded to f32 into dst [(r1 − r0), w.cols].
using DecodeRows = void (*)(const weights::Weight& w, int64_t r0, int64_t r1, float* dst);
// out[i·ldo + (r − r0)] = x[i, :] · w[r, :] for i < n, r in [r0, r1).
using GemvRows = void (*)(const weights::Weight& w, const float* x, int64_t n, int64_t r0, int64_t r1, float* out,
                          int64_t ldo);

struct FormatKernels {
  std::string_view name;
  GemvRows gemv;
  DecodeRows decode;
};

// The kernels for w's format; throws loom::Error(kUnsupported, "[<op>] no CPU kernel for …") when there are none, and
// kInternal when the storage does not match the logical shape.
const FormatKernels& format_kernels(const weights::Weight& w, std::string_view op);

// GEMV for formats that only know how to decode: a few rows at a time into a thread-local f32 buffer, then the f32
// SIMD dot. Reads each weight byte once, like a fused kernel, at the cost of the decode writes.
void gemv_by_decoding(DecodeRows decode, const weights::Weight& w, const float* x, int64_t n, int64_t r0, int64_t r1,
                      float* out, int64_t ldo);

}  // namespace loom::backend::cpu
