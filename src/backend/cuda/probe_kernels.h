#pragma once
// Kernels of the device probes (device_probe.cpp): plain C++ launchers, like kernels.h.

#include <cstdint>

namespace loom::backend::cuda::kernels {

// data[i] = a bf16 value uniform in about [-1, 1), from a hash of (seed, i): GEMM operands that are neither zero nor
// constant, so the probe times the arithmetic a real forward pass does.
void fill_random_bf16(uint16_t* data, int64_t n, uint64_t seed);

}  // namespace loom::backend::cuda::kernels
