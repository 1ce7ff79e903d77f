#pragma once
// The DeviceProbe (backend/device_probe.h) of one NVIDIA GPU: cudaMemcpyAsync device-to-device for the copy
// bandwidth, cublasGemmEx (bf16 A/B/C, fp32 compute) for the GEMM ideal, cudaMemGetInfo and the CUDA backend's
// allocation counter for memory. No CUDA headers: the CLI includes this when LOOM_HAS_CUDA is defined.

#include <memory>

#include "backend/device_probe.h"

namespace loom::backend::cuda {

// Throws loom::Error(kUnsupported) when GPU `device` does not exist.
std::unique_ptr<DeviceProbe> make_device_probe(int device = 0);

}  // namespace loom::backend::cuda
