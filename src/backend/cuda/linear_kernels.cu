// The matmul and embedding kernels: a fused GEMV for decode and a decoder to f32 for prefill tiles and embedding
// rows, both over the unit decoders of weight_formats.cuh (linear.cpp says how they are used).
//
// GEMV: each group of warps owns kRowsPerWarp output rows; each lane streams whole 32-element units of those rows
// (16-byte loads where the unit allows, every weight byte read once), decodes them in registers and multiplies them
// into fp32 accumulators for every activation row (the activation unit is loaded once per lane and reused for both
// weight rows); warp shuffles sum the lanes and shared memory the group's warps.
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_formats.cuh"

namespace loom::backend::cuda::kernels {
namespace {

constexpr int kRowsPerWarp = 2;
constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kDequantThreads = 128;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

// Where a warp of a GEMV block works. The block's warps form kGemvWarps / splits row groups of `splits` warps each:
// a group owns kRowsPerWarp rows (from r0) and its warps (part 0 … splits−1) take interleaved stretches of the columns.
struct GemvPlace {
  int lane, warp, part, groups;
  int64_t r0;
};

__device__ __forceinline__ GemvPlace gemv_place(int splits) {
  GemvPlace at;
  at.lane = static_cast<int>(threadIdx.x & 31u);
  at.warp = static_cast<int>(threadIdx.x >> 5);
  at.part = at.warp % splits;
  at.groups = kGemvWarps / splits;
  at.r0 = (static_cast<int64_t>(blockIdx.x) * at.groups + at.warp / splits) * kRowsPerWarp;
  return at;
}

// out[i·ldo + row] for the block's rows: the lanes' sums, then the group's warps' (in part order, so the sum is
// deterministic) through shared memory.
template <int MaxN>
__device__ __forceinline__ void store_rows(const GemvPlace& at, const float (&acc)[kRowsPerWarp][MaxN], int splits,
                                           int n, int64_t rows, float* __restrict__ out, int64_t ldo) {
  __shared__ float partial[kGemvWarps][kRowsPerWarp][MaxN];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int i = 0; i < MaxN; ++i) {
      const float total = warp_sum(acc[r][i]);
      if (at.lane == 0) partial[at.warp][r][i] = total;
    }
  }
  __syncthreads();
  for (int item = static_cast<int>(threadIdx.x); item < at.groups * kRowsPerWarp * MaxN; item += kGemvThreads) {
    const int g = item / (kRowsPerWarp * MaxN), r = (item / MaxN) % kRowsPerWarp, i = item % MaxN;
    const int64_t row = (static_cast<int64_t>(blockIdx.x) * at.groups + g) * kRowsPerWarp + r;
    if (i >= n || row >= rows) continue;
    float total = 0.0f;
    for (int p = 0; p < splits; ++p) total += partial[g * splits + p][r][i];
    out[i * ldo + row] = total;
  }
}

// out[i·ldo + r] = x[i, :] · w[r, :] for i < n (n ≤ MaxN). Row groups and column splits (gemv_place) let a short, wide
// matrix (few rows: o_proj, down_proj, k/v) still spread over many blocks.
template <class Decoder, int MaxN>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(WeightView w, const float* __restrict__ x, int n, int splits, float* __restrict__ out, int64_t ldo) {
  const GemvPlace at = gemv_place(splits);
  const int lane = at.lane, part = at.part;
  const int64_t r0 = at.r0;
  float acc[kRowsPerWarp][MaxN] = {};
  const int64_t units = r0 < w.rows ? (w.cols + 31) / 32 : 0;
  for (int64_t u = int64_t{part} * 32 + lane; u < units; u += int64_t{splits} * 32) {
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
  store_rows(at, acc, splits, n, w.rows, out, ldo);
}

// The same product for float weights (f32, f16, bf16 with whole 32-element units), laid out for bandwidth: a lane
// reads 16-byte chunks, consecutive lanes consecutive chunks (each load instruction of a warp covers 512 contiguous
// bytes of a row), and kChunksInFlight chunks of each of the warp's rows are loaded before any is used, so every lane
// keeps several loads outstanding. Row groups and column splits as in gemv_kernel.
constexpr int kChunksInFlight = 4;

template <int Kind>
__device__ __forceinline__ void unpack_chunk(const uint4& v, float (&f)[Kind == 0 ? 4 : 8]) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (Kind == 0) {
      f[i] = __uint_as_float(words[i]);
    } else if constexpr (Kind == 1) {
      f[2 * i] = f16_bits_to_float(words[i] & 0xFFFFu);
      f[2 * i + 1] = f16_bits_to_float(words[i] >> 16);
    } else {
      f[2 * i] = __uint_as_float(words[i] << 16);
      f[2 * i + 1] = __uint_as_float(words[i] & 0xFFFF0000u);
    }
  }
}

template <int Kind, int MaxN>
__global__ void __launch_bounds__(kGemvThreads) gemv_float_kernel(WeightView w, const float* __restrict__ x, int n,
                                                                  int splits, float* __restrict__ out, int64_t ldo) {
  constexpr int kElems = Kind == 0 ? 4 : 8;  // per 16-byte chunk
  const GemvPlace at = gemv_place(splits);
  const int lane = at.lane, part = at.part;
  const int64_t r0 = at.r0;
  float acc[kRowsPerWarp][MaxN] = {};
  const int64_t chunks = r0 < w.rows ? w.cols / kElems : 0;
  const int64_t stride = int64_t{splits} * 32;
  const uint4* rows[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    // A missing last row reads the first again (its result is never stored): no branch in the loop.
    const int64_t row = r0 + r < w.rows ? r0 + r : r0;
    rows[r] = reinterpret_cast<const uint4*>(w.values + row * w.row_bytes);
  }
  for (int64_t c0 = int64_t{part} * 32 + lane; c0 < chunks; c0 += stride * kChunksInFlight) {
    uint4 v[kRowsPerWarp][kChunksInFlight];
#pragma unroll
    for (int k = 0; k < kChunksInFlight; ++k) {
      const int64_t c = c0 + k * stride;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) v[r][k] = c < chunks ? __ldg(rows[r] + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int k = 0; k < kChunksInFlight; ++k) {
      const int64_t c = c0 + k * stride;
      if (c >= chunks) break;
      float wv[kRowsPerWarp][kElems];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) unpack_chunk<Kind>(v[r][k], wv[r]);
#pragma unroll
      for (int i = 0; i < MaxN; ++i) {
        if (i >= n) break;
        const float4* xr = reinterpret_cast<const float4*>(x + i * w.cols + c * kElems);
#pragma unroll
        for (int e = 0; e < kElems; e += 4) {
          const float4 xv = __ldg(xr + e / 4);
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) {
            acc[r][i] = fmaf(wv[r][e], xv.x, acc[r][i]);
            acc[r][i] = fmaf(wv[r][e + 1], xv.y, acc[r][i]);
            acc[r][i] = fmaf(wv[r][e + 2], xv.z, acc[r][i]);
            acc[r][i] = fmaf(wv[r][e + 3], xv.w, acc[r][i]);
          }
        }
      }
    }
  }
  store_rows(at, acc, splits, n, w.rows, out, ldo);
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

void zero_rows(Stream stream, float* out, const int32_t* keep, int64_t count, int64_t cols) {
  if (count * cols == 0) return;
  zero_rows_kernel<<<static_cast<unsigned>((count * cols + 255) / 256), 256, 0, stream>>>(out, keep, count, cols);
}

void dequantize(Stream stream, const WeightView& w, Format format, const int32_t* ids, int64_t first, int64_t count,
                float scale, float* out) {
  const int64_t items = count * ((w.cols + 31) / 32);
  if (items == 0) return;
  const auto blocks = static_cast<unsigned>((items + kDequantThreads - 1) / kDequantThreads);
  with_format(format, [&]<class Decoder>(Decoder) {
    dequant_kernel<Decoder><<<blocks, kDequantThreads, 0, stream>>>(w, ids, first, count, scale, out);
  });
}

void gemv(Stream stream, const WeightView& w, Format format, const float* x, int n, int multiprocessors, float* out) {
  // Column splits: the fewest (1, 2, 4 or 8 warps per row group) that give at least two blocks per multiprocessor,
  // and never so many that a warp's lanes would have no 32-element unit to work on.
  const int64_t units = (w.cols + 31) / 32;
  int splits = 1;
  const auto blocks_for = [&](int s) {
    return (w.rows + kRowsPerWarp * (kGemvWarps / s) - 1) / (kRowsPerWarp * (kGemvWarps / s));
  };
  while (splits < kGemvWarps && blocks_for(splits) < 2 * multiprocessors && units >= int64_t{64} * splits) splits *= 2;
  const auto blocks = static_cast<unsigned>(blocks_for(splits));
  if (format == Format::kF32 || format == Format::kF16 || format == Format::kBF16) {
    const int kind = format == Format::kF32 ? 0 : format == Format::kF16 ? 1 : 2;
    const auto run = [&]<int Kind>() {
      if (n == 1) {
        gemv_float_kernel<Kind, 1><<<blocks, kGemvThreads, 0, stream>>>(w, x, n, splits, out, w.rows);
      } else if (n <= 4) {
        gemv_float_kernel<Kind, 4><<<blocks, kGemvThreads, 0, stream>>>(w, x, n, splits, out, w.rows);
      } else {
        gemv_float_kernel<Kind, kGemvMaxRows><<<blocks, kGemvThreads, 0, stream>>>(w, x, n, splits, out, w.rows);
      }
    };
    if (kind == 0) run.template operator()<0>();
    if (kind == 1) run.template operator()<1>();
    if (kind == 2) run.template operator()<2>();
    return;  // the float formats' own kernel (gemv_float_kernel); the unit decoders serve the others
  }
  with_format(format, [&]<class Decoder>(Decoder) {
    if (n == 1) {
      gemv_kernel<Decoder, 1><<<blocks, kGemvThreads, 0, stream>>>(w, x, n, splits, out, w.rows);
    } else if (n <= 4) {
      gemv_kernel<Decoder, 4><<<blocks, kGemvThreads, 0, stream>>>(w, x, n, splits, out, w.rows);
    } else {
      gemv_kernel<Decoder, kGemvMaxRows><<<blocks, kGemvThreads, 0, stream>>>(w, x, n, splits, out, w.rows);
    }
  });
}

void add_bias(Stream stream, float* x, const float* bias, int64_t rows, int64_t cols) {
  if (rows * cols == 0) return;
  add_bias_kernel<<<static_cast<unsigned>((rows * cols + 255) / 256), 256, 0, stream>>>(x, bias, rows, cols);
}

}  // namespace loom::backend::cuda::kernels
