// Row reductions (RMSNorm, LayerNorm, softmax, top-k), elementwise ops, RoPE and the vision helpers. All fp32 like
// the CPU backend; norm statistics and softmax totals are accumulated in double as the CPU does, so the two backends
// differ by fp32 rounding of the final products only.
#include "backend/cuda/kernels.h"

namespace loom::backend::cuda::kernels {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ T warp_reduce_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T partial[32];
  v = warp_reduce_sum(v);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // `partial` may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  T total = lane < warps ? partial[lane] : T(0);
  return warp_reduce_sum(total);
}

// The best (value, index) of the block: larger value, then lower index.
struct Best {
  float value;
  int32_t index;
};

__device__ __forceinline__ Best better(Best a, Best b) {
  if (b.index < 0) return a;
  if (a.index < 0) return b;
  return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

__device__ Best block_best(Best v) {
  __shared__ float values[32];
  __shared__ int32_t indices[32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Best other{__shfl_xor_sync(0xFFFFFFFFu, v.value, offset), __shfl_xor_sync(0xFFFFFFFFu, v.index, offset)};
    v = better(v, other);
  }
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();
  if (lane == 0) {
    values[warp] = v.value;
    indices[warp] = v.index;
  }
  __syncthreads();
  Best w = lane < warps ? Best{values[lane], indices[lane]} : Best{0.0f, -1};
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Best other{__shfl_xor_sync(0xFFFFFFFFu, w.value, offset), __shfl_xor_sync(0xFFFFFFFFu, w.index, offset)};
    w = better(w, other);
  }
  return w;
}

int threads_for(int64_t dim) {
  return static_cast<int>(dim >= kThreads ? kThreads : (dim + 31) / 32 * 32);
}

unsigned grid_for(int64_t items) {
  return static_cast<unsigned>((items + kThreads - 1) / kThreads);
}

__global__ void rms_norm_kernel(const float* x, const float* w, int mode, float eps, int64_t dim, float* out) {
  const float* row = x + blockIdx.x * dim;
  float* o = out + blockIdx.x * dim;
  double squares = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) squares += static_cast<double>(row[i]) * row[i];
  squares = block_sum(squares);
  const auto inv_rms = static_cast<float>(1.0 / sqrt(squares / static_cast<double>(dim) + eps));
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = row[i] * inv_rms;
    o[i] = mode == 0 ? v : mode == 1 ? v * w[i] : v * (1.0f + w[i]);
  }
}

__global__ void layer_norm_kernel(const float* x, const float* w, const float* b, float eps, int64_t dim, float* out) {
  const float* row = x + blockIdx.x * dim;
  float* o = out + blockIdx.x * dim;
  double sum = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += row[i];
  const double mean = block_sum(sum) / static_cast<double>(dim);
  double squares = 0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) squares += (row[i] - mean) * (row[i] - mean);
  squares = block_sum(squares);
  const auto inv_std = static_cast<float>(1.0 / sqrt(squares / static_cast<double>(dim) + eps));
  const auto mean_f = static_cast<float>(mean);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) o[i] = (row[i] - mean_f) * inv_std * w[i] + b[i];
}

__device__ __forceinline__ float activate(int act, float x) {
  switch (act) {
    case 0: {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    }
    case 1:
      return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    default:
      return x / (1.0f + expf(-x));
  }
}

__global__ void binary_kernel(Binary op, int act, const float* a, const float* b, int64_t n, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  switch (op) {
    case Binary::kAdd:
      out[i] = a[i] + b[i];
      break;
    case Binary::kMul:
      out[i] = a[i] * b[i];
      break;
    case Binary::kGated:
      out[i] = activate(act, a[i]) * b[i];
      break;
  }
}

__global__ void unary_kernel(Unary op, int act, float p, float q, const float* x, int64_t n, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  switch (op) {
    case Unary::kActivation:
      out[i] = activate(act, x[i]);
      break;
    case Unary::kScale:
      out[i] = x[i] * p;
      break;
    case Unary::kSoftcap:
      out[i] = p * tanhf(x[i] * q);  // q = 1/cap, as the CPU computes it
      break;
    case Unary::kClamp:
      out[i] = fminf(fmaxf(x[i], p), q);
      break;
  }
}

// One thread per (token, head, pair).
__global__ void rope_kernel(float* x, const int32_t* first, const int32_t* second, const float* inv_freq,
                            const uint8_t* axis, const int32_t* positions, int64_t tokens, int64_t heads, int pairs,
                            int64_t d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tokens * heads * pairs) return;
  const int p = static_cast<int>(i % pairs);
  const int64_t th = i / pairs, t = th / heads;
  // The angle in fp32 as the reference forms it; sincosf is the accurate (not the fast-math) version.
  const float angle = static_cast<float>(positions[axis[p] * tokens + t]) * inv_freq[p];
  float s, c;
  sincosf(angle, &s, &c);
  float* head = x + th * d;
  const float a = head[first[p]], b = head[second[p]];
  head[first[p]] = a * c - b * s;
  head[second[p]] = b * c + a * s;
}

__global__ void softmax_kernel(const float* x, int64_t n, float* out) {
  const float* row = x + blockIdx.x * n;
  float* o = out + blockIdx.x * n;
  Best best{0.0f, -1};
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) best = better(best, Best{row[i], static_cast<int32_t>(i)});
  const float max_value = block_best(best).value;
  double total = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float e = expf(row[i] - max_value);
    o[i] = e;
    total += e;
  }
  const auto inv = static_cast<float>(1.0 / block_sum(total));
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) o[i] *= inv;
}

// k passes per row: pass j takes the best element ranked after the previous pick (value descending, index ascending).
__global__ void top_k_kernel(const float* x, int64_t n, int k, int32_t* indices, float* values) {
  const float* row = x + blockIdx.x * n;
  float last_value = 0.0f;
  int32_t last_index = -1;
  for (int j = 0; j < k; ++j) {
    Best best{0.0f, -1};
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const float v = row[i];
      const bool after = last_index < 0 || v < last_value || (v == last_value && i > last_index);
      if (after) best = better(best, Best{v, static_cast<int32_t>(i)});
    }
    best = block_best(best);
    last_value = best.value;
    last_index = best.index;
    if (threadIdx.x == 0) {
      indices[blockIdx.x * k + j] = best.index;
      values[blockIdx.x * k + j] = best.value;
    }
  }
}

__global__ void avg_pool_kernel(const float* x, int64_t grid_w, int kernel, int64_t out_w, int64_t channels,
                                int64_t cells, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= cells * channels) return;
  const int64_t cell = i / channels, c = i % channels;
  const int64_t oy = cell / out_w, ox = cell % out_w;
  float sum = 0.0f;  // same order as the CPU: rows of the window, then columns
  for (int dy = 0; dy < kernel; ++dy) {
    for (int dx = 0; dx < kernel; ++dx) sum += x[((oy * kernel + dy) * grid_w + ox * kernel + dx) * channels + c];
  }
  out[i] = sum * (1.0f / static_cast<float>(kernel * kernel));
}

__global__ void extract_patches_kernel(const float* image, int64_t channels, int64_t height, int64_t width, int patch,
                                       int64_t total, float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t patch_elems = channels * patch * patch;
  const int64_t p = i / patch_elems, e = i % patch_elems;
  const int64_t cols = width / patch;
  const int64_t py = p / cols, px = p % cols;
  const int64_t c = e / (patch * patch), y = (e / patch) % patch, xx = e % patch;
  out[i] = image[(c * height + py * patch + y) * width + px * patch + xx];
}

}  // namespace

void rms_norm(Stream stream, const float* x, const float* w, int mode, float eps, int64_t rows, int64_t dim,
              float* out) {
  if (rows * dim == 0) return;
  rms_norm_kernel<<<static_cast<unsigned>(rows), threads_for(dim), 0, stream>>>(x, w, mode, eps, dim, out);
}

void layer_norm(Stream stream, const float* x, const float* w, const float* b, float eps, int64_t rows, int64_t dim,
                float* out) {
  if (rows * dim == 0) return;
  layer_norm_kernel<<<static_cast<unsigned>(rows), threads_for(dim), 0, stream>>>(x, w, b, eps, dim, out);
}

void unary(Stream stream, Unary op, int act, float p, float q, const float* x, int64_t n, float* out) {
  if (n == 0) return;
  unary_kernel<<<grid_for(n), kThreads, 0, stream>>>(op, act, p, q, x, n, out);
}

void binary(Stream stream, Binary op, int act, const float* a, const float* b, int64_t n, float* out) {
  if (n == 0) return;
  binary_kernel<<<grid_for(n), kThreads, 0, stream>>>(op, act, a, b, n, out);
}

void rope(Stream stream, float* x, const int32_t* first, const int32_t* second, const float* inv_freq,
          const uint8_t* axis, const int32_t* positions, int64_t tokens, int64_t heads, int pairs, int64_t d) {
  const int64_t items = tokens * heads * pairs;
  if (items == 0) return;
  rope_kernel<<<grid_for(items), kThreads, 0, stream>>>(x, first, second, inv_freq, axis, positions, tokens, heads,
                                                        pairs, d);
}

void softmax(Stream stream, const float* x, int64_t rows, int64_t n, float* out) {
  if (rows * n == 0) return;
  softmax_kernel<<<static_cast<unsigned>(rows), threads_for(n), 0, stream>>>(x, n, out);
}

void top_k(Stream stream, const float* x, int64_t rows, int64_t n, int k, int32_t* indices, float* values) {
  if (rows * n == 0) return;
  top_k_kernel<<<static_cast<unsigned>(rows), threads_for(n), 0, stream>>>(x, n, k, indices, values);
}

void avg_pool_2d(Stream stream, const float* x, int64_t grid_w, int kernel, int64_t out_w, int64_t channels,
                 int64_t cells, float* out) {
  if (cells * channels == 0) return;
  avg_pool_kernel<<<grid_for(cells * channels), kThreads, 0, stream>>>(x, grid_w, kernel, out_w, channels, cells, out);
}

void extract_patches(Stream stream, const float* image, int64_t channels, int64_t height, int64_t width, int patch,
                     float* out) {
  const int64_t total = channels * height * width;
  if (total == 0) return;
  extract_patches_kernel<<<grid_for(total), kThreads, 0, stream>>>(image, channels, height, width, patch, total, out);
}

}  // namespace loom::backend::cuda::kernels
