// The matmul and embedding kernels: a fused GEMV for decode and a decoder to f32 for prefill tiles and embedding
// rows, both over the unit decoders of weight_formats.cuh (linear.cpp says how they are used).
//
// GEMV: each warp owns kRowsPerWarp output rows; each lane streams whole 32-element units of those rows (16-byte loads
// where the unit allows, every weight byte read once), decodes them in registers and multiplies them into fp32
// accumulators for every activation row (the activation unit is loaded once per lane and reused for both weight
// rows); a warp shuffle sums the lanes.
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_formats.cuh"

namespace loom::backend::cuda::kernels {
namespace {

constexpr int kRowsPerWarp = 2;
constexpr int kGemvThreads = 256;
constexpr int kDequantThreads = 128;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

// out[i·ldo + r] = x[i, :] · w[r, :] for i < n (n ≤ MaxN).
template <class Decoder, int MaxN>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(WeightView w, const float* __restrict__ x, int n, float* __restrict__ out, int64_t ldo) {
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t r0 = warp * kRowsPerWarp;
  if (r0 >= w.rows) return;
  float acc[kRowsPerWarp][MaxN];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int i = 0; i < MaxN; ++i) acc[r][i] = 0.0f;
  }
  const int64_t units = (w.cols + 31) / 32;
  for (int64_t u = lane; u < units; u += 32) {
    float wv[kRowsPerWarp][32];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      if (r0 + r < w.rows) {
        Decoder::decode(w, r0 + r, u, wv[r]);
      } else {
#pragma unroll
        for (int c = 0; c < 32; ++c) wv[r][c] = 0.0f;
      }
    }
#pragma unroll
    for (int i = 0; i < MaxN; ++i) {
      if (i >= n) break;
      const float* xr = x + i * w.cols + u * 32;
#pragma unroll
      for (int c = 0; c < 32; c += 4) {
        float4 xv;
        if constexpr (Decoder::kWholeUnits) {
          xv = __ldg(reinterpret_cast<const float4*>(xr + c));
        } else {
          const int64_t col = u * 32 + c;
          xv.x = col < w.cols ? xr[c] : 0.0f;
          xv.y = col + 1 < w.cols ? xr[c + 1] : 0.0f;
          xv.z = col + 2 < w.cols ? xr[c + 2] : 0.0f;
          xv.w = col + 3 < w.cols ? xr[c + 3] : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) {
          acc[r][i] = fmaf(wv[r][c], xv.x, acc[r][i]);
          acc[r][i] = fmaf(wv[r][c + 1], xv.y, acc[r][i]);
          acc[r][i] = fmaf(wv[r][c + 2], xv.z, acc[r][i]);
          acc[r][i] = fmaf(wv[r][c + 3], xv.w, acc[r][i]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int i = 0; i < MaxN; ++i) {
      if (i >= n) break;
      const float total = warp_sum(acc[r][i]);
      if (lane == 0 && r0 + r < w.rows) out[i * ldo + r0 + r] = total;
    }
  }
}

// out[k, :] = decode(w[row_k, :]) · scale for k < count, row_k = ids ? ids[k] : first + k. One thread per unit.
template <class Decoder>
__global__ void dequant_kernel(WeightView w, const int32_t* __restrict__ ids, int64_t first, int64_t count, float scale,
                               float* __restrict__ out) {
  const int64_t units = (w.cols + 31) / 32;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= count * units) return;
  const int64_t k = item / units, u = item % units;
  const int64_t row = ids != nullptr ? ids[k] : first + k;
  float v[32];
  Decoder::decode(w, row, u, v);
  float* o = out + k * w.cols + u * 32;
#pragma unroll
  for (int c = 0; c < 32; ++c) {
    if (!Decoder::kWholeUnits && u * 32 + c >= w.cols) break;
    o[c] = scale == 1.0f ? v[c] : v[c] * scale;
  }
}

// Calls fn(Decoder{}) with the decoder of the format.
template <class Fn>
void with_format(Format format, Fn&& fn) {
  switch (format) {
    case Format::kF32:
      return fn(FloatFormat<0>{});
    case Format::kF16:
      return fn(FloatFormat<1>{});
    case Format::kBF16:
      return fn(FloatFormat<2>{});
    case Format::kFloatAny:
      return fn(FloatAnyFormat{});
    case Format::kAffine2:
      return fn(AffineFormat<2>{});
    case Format::kAffine3:
      return fn(AffineFormat<3>{});
    case Format::kAffine4:
      return fn(AffineFormat<4>{});
    case Format::kAffine5:
      return fn(AffineFormat<5>{});
    case Format::kAffine6:
      return fn(AffineFormat<6>{});
    case Format::kAffine8:
      return fn(AffineFormat<8>{});
    case Format::kMxfp4:
      return fn(Fp4Format<false>{});
    case Format::kNvfp4:
      return fn(Fp4Format<true>{});
    case Format::kMxfp8:
      return fn(Mxfp8Format{});
  }
}

__global__ void add_bias_kernel(float* x, const float* bias, int64_t rows, int64_t cols) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * cols) x[i] += bias[i % cols];
}

__global__ void zero_rows_kernel(float* out, const int32_t* keep, int64_t count, int64_t cols) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count * cols && keep[i / cols] == 0) out[i] = 0.0f;
}

}  // namespace

void zero_rows(float* out, const int32_t* keep, int64_t count, int64_t cols) {
  if (count * cols == 0) return;
  zero_rows_kernel<<<static_cast<unsigned>((count * cols + 255) / 256), 256>>>(out, keep, count, cols);
}

void dequantize(const WeightView& w, Format format, const int32_t* ids, int64_t first, int64_t count, float scale,
                float* out) {
  const int64_t items = count * ((w.cols + 31) / 32);
  if (items == 0) return;
  const auto blocks = static_cast<unsigned>((items + kDequantThreads - 1) / kDequantThreads);
  with_format(format, [&]<class Decoder>(Decoder) {
    dequant_kernel<Decoder><<<blocks, kDequantThreads>>>(w, ids, first, count, scale, out);
  });
}

void gemv(const WeightView& w, Format format, const float* x, int n, float* out) {
  const int64_t warps = (w.rows + kRowsPerWarp - 1) / kRowsPerWarp;
  const auto blocks = static_cast<unsigned>((warps * 32 + kGemvThreads - 1) / kGemvThreads);
  with_format(format, [&]<class Decoder>(Decoder) {
    if (n == 1) {
      gemv_kernel<Decoder, 1><<<blocks, kGemvThreads>>>(w, x, n, out, w.rows);
    } else if (n <= 4) {
      gemv_kernel<Decoder, 4><<<blocks, kGemvThreads>>>(w, x, n, out, w.rows);
    } else {
      gemv_kernel<Decoder, kGemvMaxRows><<<blocks, kGemvThreads>>>(w, x, n, out, w.rows);
    }
  });
}

void add_bias(float* x, const float* bias, int64_t rows, int64_t cols) {
  if (rows * cols == 0) return;
  add_bias_kernel<<<static_cast<unsigned>((rows * cols + 255) / 256), 256>>>(x, bias, rows, cols);
}

}  // namespace loom::backend::cuda::kernels
