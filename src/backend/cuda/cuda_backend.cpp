// Construction, memory and transfers of the CUDA backend: device tensors are cudaMalloc allocations owned by the
// Tensor (Tensor::adopt with a cudaFree deleter); weights are uploaded once, every tensor in its stored dtype.
#include <atomic>
#include <memory>

#include "backend/cuda/common.h"
#include "weights/quant/quantize.h"

namespace loom::backend::cuda {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    fail(ErrorKind::kInternal, "[cuda] {} failed: {} ({})", what, cudaGetErrorName(status), cudaGetErrorString(status));
  }
}

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    fail(ErrorKind::kInternal, "[cuda] {} failed: cuBLAS status {}", what, static_cast<int>(status));
  }
}

void check_launch(std::string_view op) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    fail(ErrorKind::kInternal, "[{}] kernel launch failed: {} ({})", op, cudaGetErrorName(status),
         cudaGetErrorString(status));
  }
}

namespace {
std::atomic<int64_t> allocated{0};
std::atomic<int64_t> peak{0};
std::atomic<uint64_t> allocations{0};
}  // namespace

void* tracked_malloc(size_t bytes) {
  void* data = nullptr;
  allocations.fetch_add(1);
  LOOM_CUDA(cudaMalloc(&data, bytes));
  const int64_t now = allocated.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
  int64_t seen = peak.load();
  while (now > seen && !peak.compare_exchange_weak(seen, now)) {
  }
  return data;
}

void tracked_free(void* data, size_t bytes) {
  if (data == nullptr) return;
  cudaFree(data);
  allocated.fetch_sub(static_cast<int64_t>(bytes));
}

int64_t tracked_bytes() {
  return allocated.load();
}

int64_t tracked_peak_bytes() {
  return peak.load();
}

void reset_tracked_peak() {
  peak.store(allocated.load());
}

uint64_t allocation_epoch() {
  return allocations.load();
}

DeviceBuffer::~DeviceBuffer() {
  tracked_free(data_, size_);
}

void* DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= size_ && data_ != nullptr) return data_;
  if (data_ != nullptr) {
    LOOM_CUDA(cudaDeviceSynchronize());  // a kernel still reading the old buffer must finish first
    tracked_free(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
  const size_t size = std::max<size_t>(bytes, 4096);
  data_ = tracked_malloc(size);
  size_ = size;
  return data_;
}

const uint8_t* MetaUpload::commit(MetaRing& ring) {
  return ring.commit(bytes_);
}

MetaRing::~MetaRing() {
  if (host_ != nullptr) cudaFreeHost(host_);
  if (device_ != nullptr) tracked_free(device_, capacity_);
}

const uint8_t* MetaRing::commit(std::span<const uint8_t> bytes) {
  constexpr size_t kAlign = 256;
  if (capturing_) {
    fail(ErrorKind::kInternal, "[cuda] per-op metadata ({} bytes) outside the bound step cannot be recorded",
         bytes.size());
  }
  if (bytes.size() > capacity_ / 4) {
    auto* device = static_cast<uint8_t*>(oversize_.reserve(bytes.size()));
    // Waiting for the copy: it has left `bytes` when it returns, and kernels queued before it on the stream have
    // finished with the buffer's previous contents.
    LOOM_CUDA(cudaMemcpyAsync(device, bytes.data(), bytes.size(), cudaMemcpyHostToDevice, stream_));
    LOOM_CUDA(cudaStreamSynchronize(stream_));
    return device;
  }
  if (host_ == nullptr) {
    LOOM_CUDA(cudaHostAlloc(reinterpret_cast<void**>(&host_), capacity_, cudaHostAllocDefault));
    device_ = static_cast<uint8_t*>(tracked_malloc(capacity_));
  }
  if (head_ + bytes.size() > capacity_) {
    // Every copy and kernel of the last lap must be done before its stretches are written again.
    LOOM_CUDA(cudaStreamSynchronize(stream_));
    head_ = 0;
  }
  const size_t offset = head_;
  head_ = (head_ + bytes.size() + kAlign - 1) / kAlign * kAlign;
  if (bytes.empty()) return device_ + offset;
  std::memcpy(host_ + offset, bytes.data(), bytes.size());
  LOOM_CUDA(cudaMemcpyAsync(device_ + offset, host_ + offset, bytes.size(), cudaMemcpyHostToDevice, stream_));
  return device_ + offset;
}

namespace {

// Memory calls may come from a thread that is not bound to this backend's GPU (the engine allocates its KV cache on
// the thread that builds it): they make the backend's GPU current first. Kernels are issued by threads bound to the
// GPU (tensor-parallel ranks bind their thread once).
void use_device(int device) {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device) LOOM_CUDA(cudaSetDevice(device));
}

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

CudaBackend::CudaBackend(int device) : device_(device), state_(std::make_unique<State>()) {
  const int count = device_count();
  if (device < 0 || device >= count) {
    fail(ErrorKind::kUnsupported, "[cuda] GPU {} requested, {} available", device, count);
  }
  LOOM_CUDA(cudaSetDevice(device));
  LOOM_CUDA(cudaStreamCreateWithFlags(&state_->stream, cudaStreamNonBlocking));
  LOOM_CUDA(cudaDeviceGetAttribute(&state_->multiprocessors, cudaDevAttrMultiProcessorCount, device));
  state_->meta.set_stream(state_->stream);
  LOOM_CUDA(cudaEventCreateWithFlags(&state_->step.copied, cudaEventDisableTiming));
  LOOM_CUBLAS(cublasCreate(&state_->cublas));
  LOOM_CUBLAS(cublasSetStream(state_->cublas, state_->stream));
  // Plain fp32 GEMMs (no TF32): the prefill path must agree with the CPU backend to fp32 rounding.
  LOOM_CUBLAS(cublasSetMathMode(state_->cublas, CUBLAS_PEDANTIC_MATH));
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(device_);
  if (!state_) return;
  if (state_->stream != nullptr) cudaStreamSynchronize(state_->stream);
  if (state_->cublas != nullptr) cublasDestroy(state_->cublas);
  if (state_->step.staging != nullptr) cudaFreeHost(state_->step.staging);
  if (state_->step.copied != nullptr) cudaEventDestroy(state_->step.copied);
  if (state_->stream != nullptr) cudaStreamDestroy(state_->stream);
}

CUstream_st* CudaBackend::stream() const {
  return state_->stream;
}

Tensor CudaBackend::allocate(DType dtype, Shape shape) {
  const int64_t elements = shape_elements(shape);
  const std::optional<uint64_t> bytes = dtype_bytes_for(dtype, static_cast<uint64_t>(elements));
  if (!bytes)
    fail(ErrorKind::kInternal, "[allocate] {} elements of {} do not fill whole bytes", elements, dtype_name(dtype));
  use_device(device_);
  // cudaMalloc of 0 bytes returns null; a 1-byte allocation keeps empty tensors non-null like host ones.
  const size_t size = std::max<uint64_t>(*bytes, 1);
  void* data = tracked_malloc(size);
  std::shared_ptr<void> storage(data, [size](void* p) { tracked_free(p, size); });
  if (*bytes > 0) LOOM_CUDA(cudaMemsetAsync(data, 0, *bytes, state_->stream));
  return Tensor::adopt(dtype, std::move(shape), std::move(storage), device());
}

std::optional<DeviceMemoryInfo> CudaBackend::memory_info() const {
  LOOM_CUDA(cudaSetDevice(device_));
  size_t free = 0, total = 0;
  LOOM_CUDA(cudaMemGetInfo(&free, &total));
  return DeviceMemoryInfo{.free_bytes = static_cast<int64_t>(free), .total_bytes = static_cast<int64_t>(total)};
}

Tensor CudaBackend::upload(const Tensor& host) {
  if (host.empty()) return host;
  if (on_device(host)) fail(ErrorKind::kInternal, "[upload] the tensor is already in device memory");
  use_device(device_);
  Tensor device_tensor = allocate(host.dtype(), host.shape());
  if (host.bytes() > 0) {
    LOOM_CUDA(cudaMemcpyAsync(device_tensor.data(), host.data(), host.bytes(), cudaMemcpyHostToDevice, state_->stream));
    LOOM_CUDA(cudaStreamSynchronize(state_->stream));
  }
  return device_tensor;
}

weights::Weight CudaBackend::upload(const weights::Weight& host) {
  try {
    weights::quant::validate(host, "weight");
  } catch (const Error& e) {
    fail(ErrorKind::kInternal, "[upload] {}", e.what());
  }
  weights::Weight w = host;
  w.values = upload(host.values);
  w.scales = upload(host.scales);
  w.biases = upload(host.biases);
  return w;
}

Tensor CudaBackend::to_host(const Tensor& t) {
  if (!on_device(t)) fail(ErrorKind::kInternal, "[to_host] the tensor is not in CUDA device memory");
  use_device(device_);
  Tensor host = Tensor::zeros(t.dtype(), t.shape());
  if (t.bytes() > 0) {
    LOOM_CUDA(cudaMemcpyAsync(host.data(), t.data(), t.bytes(), cudaMemcpyDeviceToHost, state_->stream));
    LOOM_CUDA(cudaStreamSynchronize(state_->stream));
  }
  return host;
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  if (src.dtype() != dst.dtype() || src.elements() != dst.elements() || src.empty() || dst.empty()) {
    fail(ErrorKind::kInternal, "[copy] {} {} into {} {}", dtype_name(src.dtype()), shape_string(src.shape()),
         dtype_name(dst.dtype()), shape_string(dst.shape()));
  }
  use_device(device_);
  const cudaMemcpyKind kind = on_device(src) ? (on_device(dst) ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                                             : (on_device(dst) ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  if (src.bytes() == 0 || src.data() == dst.data()) return;
  LOOM_CUDA(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(), kind, state_->stream));
  // A copy between two device tensors stays in stream order; one touching host memory is waited for, so the host
  // side is complete (or free to change) when copy returns.
  if (kind != cudaMemcpyDeviceToDevice) LOOM_CUDA(cudaStreamSynchronize(state_->stream));
}

}  // namespace loom::backend::cuda
