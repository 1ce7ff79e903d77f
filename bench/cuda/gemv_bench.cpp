// Batch-1 GEMV bandwidth of the CUDA backend: x [1, cols] · Wᵀ for W [rows, cols] in bf16, affine-4 (group 64, bf16
// scales), mxfp4 and nvfp4, each several times the GPU's L2 so every weight byte comes from HBM. Reports the bytes the
// kernel must read (packed weight, scales, biases, x) per second, and the ratio to a device-to-device cudaMemcpy
// measured in the same run (counted as read + write bytes), the practical ceiling of a memory-bound kernel.
//
//   build/cuda/bench/cuda_gemv_bench [rows cols]     (default 32768 × 8192)
//
// Weights are random bit patterns with valid scales: the kernels' speed does not depend on the values.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/float_formats.h"

namespace {

using loom::DType;
using loom::Tensor;
using loom::weights::QuantMode;
using loom::weights::Weight;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

Tensor random_bytes(DType dtype, loom::Shape shape, std::mt19937& rng) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  auto* bytes = static_cast<uint8_t*>(t.data());
  for (size_t i = 0; i < t.bytes(); ++i) bytes[i] = static_cast<uint8_t>(rng());
  return t;
}

Tensor filled_u16(loom::Shape shape, uint16_t value) {
  Tensor t = Tensor::zeros(DType::kBF16, std::move(shape));
  for (auto& v : std::span<uint16_t>(t.data_as<uint16_t>(), static_cast<size_t>(t.elements()))) v = value;
  return t;
}

Tensor filled_u8(loom::Shape shape, uint8_t value) {
  Tensor t = Tensor::zeros(DType::kU8, std::move(shape));
  for (auto& v : std::span<uint8_t>(t.data_as<uint8_t>(), static_cast<size_t>(t.elements()))) v = value;
  return t;
}

Weight make_weight(const std::string& format, int64_t rows, int64_t cols, std::mt19937& rng) {
  Weight w;
  w.rows = rows;
  w.cols = cols;
  if (format == "bf16") {
    // Random bf16 patterns include NaN/Inf; small finite values keep the arithmetic ordinary.
    w.values = filled_u16({rows, cols}, loom::float_to_bf16(0.01f));
    return w;
  }
  if (format == "affine-4") {
    w.quant = {QuantMode::kAffine, 4, 64};
    w.scales = filled_u16({rows, cols / 64}, loom::float_to_bf16(0.01f));
    w.biases = filled_u16({rows, cols / 64}, loom::float_to_bf16(-0.08f));
  } else if (format == "mxfp4") {
    w.quant = {QuantMode::kMxfp4, 4, 32};
    w.scales = filled_u8({rows, cols / 32}, 120);
  } else {
    w.quant = {QuantMode::kNvfp4, 4, 16};
    w.scales = filled_u8({rows, cols / 16}, 0x30);
  }
  w.values = random_bytes(DType::kU32, {rows, cols * 4 / 32}, rng);
  return w;
}

double weight_bytes(const Weight& w) {
  return static_cast<double>(w.values.bytes() + (w.scales.empty() ? 0 : w.scales.bytes()) +
                             (w.biases.empty() ? 0 : w.biases.bytes()));
}

template <typename Fn>
double seconds_per_call(Fn&& fn, int iterations) {
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  check(cudaEventRecord(start), "record");
  for (int i = 0; i < iterations; ++i) fn();
  check(cudaEventRecord(stop), "record");
  check(cudaEventSynchronize(stop), "sync");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 1000.0 / iterations;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 2 ? std::atoll(argv[1]) : 32768;
  const int64_t cols = argc > 2 ? std::atoll(argv[2]) : 8192;
  if (loom::backend::cuda::device_count() == 0) {
    std::printf("no CUDA GPU\n");
    return 0;
  }
  loom::backend::cuda::CudaBackend gpu(0);
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");

  // The ceiling: a device-to-device copy of 1 GiB, counted as bytes read plus bytes written.
  const size_t copy_bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, copy_bytes), "malloc");
  check(cudaMalloc(&b, copy_bytes), "malloc");
  const double copy_s =
      seconds_per_call([&] { check(cudaMemcpy(b, a, copy_bytes, cudaMemcpyDeviceToDevice), "copy"); }, 20);
  const double copy_rate = 2.0 * static_cast<double>(copy_bytes) / copy_s;
  cudaFree(a);
  cudaFree(b);
  std::printf("%s, %d SMs; weight %lld x %lld; device-to-device copy %.0f GB/s (read + write)\n", prop.name,
              prop.multiProcessorCount, static_cast<long long>(rows), static_cast<long long>(cols), copy_rate / 1e9);
  std::printf("%-10s %12s %12s %12s %8s\n", "format", "MB read", "us/call", "GB/s", "ratio");

  std::mt19937 rng(7);
  std::vector<float> x_host(static_cast<size_t>(cols), 0.5f);
  const Tensor x = gpu.upload(Tensor::borrow(DType::kF32, {1, cols}, x_host.data()));
  Tensor out = gpu.allocate(DType::kF32, {1, rows});
  for (const char* format : {"bf16", "affine-4", "mxfp4", "nvfp4"}) {
    const Weight w = gpu.upload(make_weight(format, rows, cols, rng));
    const double bytes = weight_bytes(w) + 4.0 * static_cast<double>(cols + rows);
    const double s = seconds_per_call([&] { gpu.matmul(x, w, out); }, 50);
    std::printf("%-10s %12.1f %12.1f %12.0f %8.2f\n", format, bytes / 1e6, s * 1e6, bytes / s / 1e9,
                bytes / s / copy_rate);
  }
  check(cudaDeviceSynchronize(), "sync");
  return 0;
}
