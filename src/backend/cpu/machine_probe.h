#pragma once
// Measurements of the machine a benchmark runs on, taken in the same run as the figures they are compared with:
// a STREAM-style memory bandwidth (read and copy over a buffer far larger than the last-level cache, on the same
// thread pool the backend uses) and OpenBLAS sgemm throughput on a given shape.

#include <cstdint>

#include "core/thread_pool.h"

namespace loom::backend::cpu {

// The last-level cache in bytes (sysconf, else /sys), 0 when unknown.
int64_t last_level_cache_bytes();

struct MemoryBandwidth {
  int64_t buffer_bytes = 0;
  int threads = 0;
  double read_bytes_per_s = 0;  // bytes read / time, summing the buffer (what a weight-streaming GEMV does)
  double copy_bytes_per_s = 0;  // (bytes read + bytes written) / time, copying one half onto the other (STREAM copy)
};

// Best of `repeats` passes of each kernel over a buffer of `bytes`, split across every thread of `pool`.
MemoryBandwidth measure_memory_bandwidth(ThreadPool& pool, int64_t bytes, int repeats);

// OpenBLAS sgemm C[m, n] = A[m, k]·B[n, k]ᵀ (the backend's prefill layout): 2·m·n·k / time, best of `repeats`.
double measure_sgemm_flops(int64_t m, int64_t n, int64_t k, int repeats);

// OpenBLAS's thread count.
int blas_threads();

}  // namespace loom::backend::cpu
