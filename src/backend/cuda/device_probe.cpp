// The CUDA device probe (device_probe.h). Every measurement is timed with CUDA events on a stream of its own and
// synchronised before it returns, so it never overlaps the backend's work.
#include "backend/cuda/device_probe.h"

#include <algorithm>
#include <limits>

#include "backend/cuda/common.h"
#include "backend/cuda/probe_kernels.h"

namespace loom::backend::cuda {
namespace {

// A device allocation released on scope exit (counted like the backend's, so the peak includes probe buffers).
class Scratch {
 public:
  explicit Scratch(size_t bytes) : bytes_(std::max<size_t>(bytes, 256)), data_(tracked_malloc(bytes_)) {}
  ~Scratch() { tracked_free(data_, bytes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* data() const { return data_; }

 private:
  size_t bytes_;
  void* data_;
};

class EventTimer {
 public:
  explicit EventTimer(cudaStream_t stream) : stream_(stream) {
    LOOM_CUDA(cudaEventCreate(&start_));
    LOOM_CUDA(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start() { LOOM_CUDA(cudaEventRecord(start_, stream_)); }
  double stop_seconds() {
    LOOM_CUDA(cudaEventRecord(stop_, stream_));
    LOOM_CUDA(cudaEventSynchronize(stop_));
    float ms = 0;
    LOOM_CUDA(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms) / 1000.0;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

class CudaDeviceProbe final : public DeviceProbe {
 public:
  explicit CudaDeviceProbe(int device) : device_(device) {
    const int count = device_count();
    if (device < 0 || device >= count) {
      fail(ErrorKind::kUnsupported, "[cuda probe] GPU {} requested, {} available", device, count);
    }
    LOOM_CUDA(cudaSetDevice(device_));
    LOOM_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    LOOM_CUBLAS(cublasCreate(&cublas_));
    LOOM_CUBLAS(cublasSetStream(cublas_, stream_));
  }
  ~CudaDeviceProbe() override {
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }
  CudaDeviceProbe(const CudaDeviceProbe&) = delete;
  CudaDeviceProbe& operator=(const CudaDeviceProbe&) = delete;

  std::string device_name() const override {
    cudaDeviceProp props{};
    LOOM_CUDA(cudaGetDeviceProperties(&props, device_));
    return props.name;
  }

  DeviceMemoryInfo memory() const override {
    LOOM_CUDA(cudaSetDevice(device_));
    size_t free = 0, total = 0;
    LOOM_CUDA(cudaMemGetInfo(&free, &total));
    return {.free_bytes = static_cast<int64_t>(free), .total_bytes = static_cast<int64_t>(total)};
  }

  int64_t allocated_bytes() const override { return tracked_bytes(); }
  int64_t peak_allocated_bytes() const override { return tracked_peak_bytes(); }
  void reset_peak() override { reset_tracked_peak(); }

  CopyBandwidth copy_bandwidth(int64_t bytes, int repeats) override {
    if (bytes < 1 || repeats < 1)
      fail(ErrorKind::kInvalidRequest, "[cuda probe] copy of {} bytes × {}", bytes, repeats);
    LOOM_CUDA(cudaSetDevice(device_));
    const auto size = static_cast<size_t>(bytes);
    Scratch src(size), dst(size);
    LOOM_CUDA(cudaMemsetAsync(src.data(), 1, size, stream_));
    EventTimer timer(stream_);
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r <= repeats; ++r) {  // pass 0 warms up
      timer.start();
      LOOM_CUDA(cudaMemcpyAsync(dst.data(), src.data(), size, cudaMemcpyDeviceToDevice, stream_));
      const double seconds = timer.stop_seconds();
      if (r > 0) best = std::min(best, seconds);
    }
    return {.buffer_bytes = bytes, .seconds = best, .bytes_per_s = 2.0 * static_cast<double>(bytes) / best};
  }

  double gemm_seconds(std::span<const GemmShape> shapes, int repeats) override {
    if (repeats < 1) fail(ErrorKind::kInvalidRequest, "[cuda probe] GEMM repeats must be >= 1");
    LOOM_CUDA(cudaSetDevice(device_));
    int64_t a_elements = 1, b_elements = 1, c_elements = 1;
    for (const GemmShape& s : shapes) {
      if (s.m < 1 || s.n < 1 || s.k < 1 || s.count < 0 || s.m > kMaxDim || s.n > kMaxDim || s.k > kMaxDim) {
        fail(ErrorKind::kInvalidRequest, "[cuda probe] GEMM shape m={} n={} k={} ×{} out of range", s.m, s.n, s.k,
             s.count);
      }
      a_elements = std::max(a_elements, s.m * s.k);
      b_elements = std::max(b_elements, s.n * s.k);
      c_elements = std::max(c_elements, s.m * s.n);
    }
    Scratch a(static_cast<size_t>(a_elements) * 2), b(static_cast<size_t>(b_elements) * 2),
        c(static_cast<size_t>(c_elements) * 2);
    kernels::fill_random_bf16(static_cast<uint16_t*>(a.data()), a_elements, 0xA11CEull);
    check_launch("cuda probe fill");
    kernels::fill_random_bf16(static_cast<uint16_t*>(b.data()), b_elements, 0xB0Bull);
    check_launch("cuda probe fill");
    LOOM_CUDA(cudaDeviceSynchronize());  // the fills ran on the default stream

    EventTimer timer(stream_);
    const float alpha = 1.0f, beta = 0.0f;
    double total = 0;
    for (const GemmShape& s : shapes) {
      if (s.count == 0) continue;
      // Row-major out[m, n] = x[m, k] · W[n, k]ᵀ is column-major outᵀ[n, m] = Wᵀ · xᵀ: W as a k×n matrix transposed.
      const auto run = [&] {
        LOOM_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(s.n), static_cast<int>(s.m),
                                 static_cast<int>(s.k), &alpha, b.data(), CUDA_R_16BF, static_cast<int>(s.k), a.data(),
                                 CUDA_R_16BF, static_cast<int>(s.k), &beta, c.data(), CUDA_R_16BF,
                                 static_cast<int>(s.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      };
      run();  // warm-up: heuristics, workspace
      double best = std::numeric_limits<double>::infinity();
      for (int r = 0; r < repeats; ++r) {
        timer.start();
        run();
        best = std::min(best, timer.stop_seconds());
      }
      total += best * static_cast<double>(s.count);
    }
    return total;
  }

  std::string gemm_name() const override { return "cublasGemmEx bf16 (fp32 compute)"; }

 private:
  static constexpr int64_t kMaxDim = std::numeric_limits<int>::max();
  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceProbe> make_device_probe(int device) {
  return std::make_unique<CudaDeviceProbe>(device);
}

}  // namespace loom::backend::cuda
