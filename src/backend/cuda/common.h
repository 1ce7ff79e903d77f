#pragma once
// What the CUDA op files share: error checks, argument checks (messages start with the op name, like the CPU
// backend's), grow-only device buffers and the per-call upload of host metadata.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace loom::backend::cuda {

// Throws loom::Error(kInternal) naming the failed call and the CUDA error.
void check_cuda(cudaError_t status, const char* what);
void check_cublas(cublasStatus_t status, const char* what);
#define LOOM_CUDA(call) ::loom::backend::cuda::check_cuda((call), #call)
#define LOOM_CUBLAS(call) ::loom::backend::cuda::check_cublas((call), #call)
// After a kernel launch: reports a bad launch configuration under the op's name.
void check_launch(std::string_view op);

// cudaMalloc / cudaFree that keep a process-wide count of the bytes loom holds on the device (and its high-water
// mark, see device_probe.h); every allocation of the backend goes through them.
void* tracked_malloc(size_t bytes);
void tracked_free(void* data, size_t bytes);
int64_t tracked_bytes();
int64_t tracked_peak_bytes();
void reset_tracked_peak();

// Device memory that only grows; reused across calls on the backend's one stream.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* reserve(size_t bytes);

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

class MetaRing;

// Host values gathered for one op and copied to the device in one transfer. add() returns the element offset of the
// values in the device copy, typed; every array starts 8-byte aligned.
class MetaUpload {
 public:
  template <typename T>
  size_t add(std::span<const T> values) {
    const size_t offset = (bytes_.size() + 7) / 8 * 8;
    bytes_.resize(offset + values.size_bytes());
    if (!values.empty()) std::memcpy(bytes_.data() + offset, values.data(), values.size_bytes());
    return offset;
  }
  // Queues the copy of everything to the device (see MetaRing) and returns the device base pointer, valid for the
  // kernels queued next on the backend's stream.
  const uint8_t* commit(MetaRing& ring);

 private:
  std::vector<uint8_t> bytes_;
};

// Per-op metadata travels through a ring of pinned host memory mirrored by a ring of device memory: commit() copies
// the bytes into the next free stretch of the pinned ring and queues an asynchronous copy to the same stretch of the
// device ring on the backend's stream, so the host does not wait for the GPU on every op (a synchronous copy from
// pageable memory did, which serialised host and GPU work and dominated the decode step). Stream order keeps the
// device side safe: the copy runs after every kernel queued before it, and the kernels that read it run after it.
// A stretch is written again only after the ring wraps, and the wrap waits for the stream to drain first, so no copy
// still reads the pinned stretch and no kernel still reads the device stretch. Blocks too large for the ring take a
// synchronous copy into a grow-only buffer.
class MetaRing {
 public:
  explicit MetaRing(size_t capacity = size_t{8} << 20) : capacity_(capacity) {}
  ~MetaRing();
  MetaRing(const MetaRing&) = delete;
  MetaRing& operator=(const MetaRing&) = delete;
  const uint8_t* commit(std::span<const uint8_t> bytes);

 private:
  size_t capacity_;
  size_t head_ = 0;
  uint8_t* host_ = nullptr;    // pinned
  uint8_t* device_ = nullptr;  // device mirror
  DeviceBuffer oversize_;
};

template <typename T>
const T* at(const uint8_t* base, size_t offset) {
  return reinterpret_cast<const T*>(base + offset);
}

struct CudaBackend::State {
  cublasHandle_t cublas = nullptr;
  MetaRing meta;        // per-op metadata (ids, positions, block tables)
  DeviceBuffer tile;    // weights dequantized to f32 for prefill GEMMs
  DeviceBuffer result;  // small results read back by argmax / top_k
};

inline bool on_device(const Tensor& t) {
  return t.device().kind == DeviceKind::kCuda;
}

inline void expect_f32(const Tensor& t, std::string_view op, std::string_view what) {
  if (t.empty()) fail(ErrorKind::kInternal, "[{}] {} is empty", op, what);
  if (t.dtype() != DType::kF32)
    fail(ErrorKind::kInternal, "[{}] {} must be F32, got {}", op, what, dtype_name(t.dtype()));
  if (!on_device(t)) fail(ErrorKind::kInternal, "[{}] {} is not in CUDA device memory", op, what);
}

inline void expect_same_shape(const Tensor& a, const Tensor& b, std::string_view op, std::string_view what) {
  if (a.shape() != b.shape()) {
    fail(ErrorKind::kInternal, "[{}] {} has shape {}, expected {}", op, what, shape_string(b.shape()),
         shape_string(a.shape()));
  }
}

inline void expect_shape(const Tensor& t, const Shape& shape, std::string_view op, std::string_view what) {
  if (t.shape() != shape) {
    fail(ErrorKind::kInternal, "[{}] {} has shape {}, expected {}", op, what, shape_string(t.shape()),
         shape_string(shape));
  }
}

inline int64_t last_dim(const Tensor& t) {
  return t.rank() == 0 ? 1 : t.dim(-1);
}

inline unsigned grid_for(int64_t items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

}  // namespace loom::backend::cuda
