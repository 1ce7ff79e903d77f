#pragma once
// Measurements of an accelerator a benchmark runs on, taken in the same run as the figures they are compared with:
// device-to-device copy bandwidth (the roofline decode is held against), the time a vendor GEMM library takes for a
// list of matmul shapes (the ideal prefill is held against) and device memory. Host-only: the CUDA implementation is
// backend/cuda/device_probe.h, built only with the CUDA backend.

#include <cstdint>
#include <span>
#include <string>

namespace loom::backend {

struct DeviceMemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};

// One matmul of a forward pass: out[m, n] = x[m, k] · W[n, k]ᵀ, `count` times.
struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
  int64_t count = 1;
};

struct CopyBandwidth {
  int64_t buffer_bytes = 0;  // bytes copied per pass
  double seconds = 0;        // best pass
  // (bytes read + bytes written) / time = 2 · buffer_bytes / seconds: the memory traffic of the copy, which is the
  // convention decode is compared with (decode streams weights: its traffic is the bytes it reads).
  double bytes_per_s = 0;
};

class DeviceProbe {
 public:
  virtual ~DeviceProbe() = default;
  virtual std::string device_name() const = 0;
  virtual DeviceMemoryInfo memory() const = 0;
  // Device memory held by loom's allocations (tensors and scratch buffers of every backend on this device) now, and
  // the most it held since the last reset_peak(); library workspaces (cuBLAS) are not counted.
  virtual int64_t allocated_bytes() const = 0;
  virtual int64_t peak_allocated_bytes() const = 0;
  virtual void reset_peak() = 0;
  // Best of `repeats` device-to-device copies of `bytes` (after one warm-up copy).
  virtual CopyBandwidth copy_bandwidth(int64_t bytes, int repeats) = 0;
  // Σ count · (best of `repeats` runs of one GEMM of the shape): bf16 inputs and output, fp32 accumulation, on random
  // data. Buffers are freed before returning.
  virtual double gemm_seconds(std::span<const GemmShape> shapes, int repeats) = 0;
  // The GEMM library and types gemm_seconds uses, for reports.
  virtual std::string gemm_name() const = 0;
};

}  // namespace loom::backend
