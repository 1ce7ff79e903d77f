// The device probes' fill kernel (probe_kernels.h).
#include "backend/cuda/probe_kernels.h"

namespace loom::backend::cuda::kernels {
namespace {

__global__ void fill_random_bf16_kernel(uint16_t* data, int64_t n, uint64_t seed) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // splitmix64 of (seed, i), then the top 24 bits as a uniform float in [-1, 1), truncated to bf16.
    uint64_t z = seed + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float v = static_cast<float>(z >> 40) * (1.0f / 8388608.0f) - 1.0f;
    data[i] = static_cast<uint16_t>(__float_as_uint(v) >> 16);
  }
}

}  // namespace

void fill_random_bf16(uint16_t* data, int64_t n, uint64_t seed) {
  if (n <= 0) return;
  constexpr int kThreads = 256;
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  const unsigned blocks = static_cast<unsigned>(wanted < 65536 ? wanted : 65536);
  fill_random_bf16_kernel<<<blocks, kThreads>>>(data, n, seed);
}

}  // namespace loom::backend::cuda::kernels
