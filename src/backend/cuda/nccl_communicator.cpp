// NCCL collectives and the one-process group of GPU ranks (nccl_communicator.h). Built only with NCCL.
#ifdef LOOM_HAS_NCCL

#include "backend/cuda/nccl_communicator.h"

#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <set>

#include "backend/cuda/common.h"

namespace loom::backend::cuda {
namespace {

void check_nccl(ncclResult_t status, ncclComm_t comm, const char* what) {
  if (status == ncclSuccess || status == ncclInProgress) return;
  const char* detail = comm != nullptr ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
  fail(ErrorKind::kInternal, "[nccl] {} failed: {}{}{}", what, ncclGetErrorString(status),
       detail != nullptr && *detail != '\0' ? ": " : "", detail != nullptr ? detail : "");
}
#define LOOM_NCCL(call, comm) check_nccl((call), (comm), #call)

// Makes `device` current for the scope and restores the caller's device after. Used on teardown paths (abort, the
// destructor), so it reports nothing: a failure there changes nothing the caller could act on.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    cudaSetDevice(device);
  }
  ~DeviceScope() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
};

void expect_rank_tensor(const Tensor& t, int device, const char* op, const char* what) {
  if (t.empty()) fail(ErrorKind::kInternal, "[{}] {} is empty", op, what);
  if (t.dtype() != DType::kF32)
    fail(ErrorKind::kInternal, "[{}] {} must be F32, got {}", op, what, dtype_name(t.dtype()));
  if (t.device().kind != DeviceKind::kCuda || t.device().index != device) {
    fail(ErrorKind::kInternal, "[{}] {} is not in the memory of GPU {} (this rank's)", op, what, device);
  }
}

}  // namespace

void disable_nvlink_multicast() {
  ::setenv("NCCL_NVLS_ENABLE", "0", 1);
}

NcclCommunicator::NcclCommunicator(ncclComm* comm, int rank, int size, int device, CUstream_st* stream)
    : comm_(comm), rank_(rank), size_(size), device_(device), stream_(stream) {}

NcclCommunicator::~NcclCommunicator() {
  DeviceScope scope(device_);
  if (scratch_ != nullptr) cudaFree(scratch_);
  std::lock_guard lock(mutex_);
  if (!aborted_ && comm_ != nullptr) ncclCommDestroy(comm_);
}

void NcclCommunicator::abort() {
  std::lock_guard lock(mutex_);
  if (aborted_) return;
  aborted_ = true;
  DeviceScope scope(device_);
  ncclCommAbort(comm_);  // nothing to report: the group is being torn down after a failure
  comm_ = nullptr;
}

void NcclCommunicator::all_reduce_sum(Tensor& x) {
  expect_rank_tensor(x, device_, "all_reduce_sum", "x");
  std::lock_guard lock(mutex_);
  if (aborted_) fail(ErrorKind::kInternal, "[nccl] rank {}: all_reduce_sum after abort", rank_);
  LOOM_NCCL(ncclAllReduce(x.data(), x.data(), static_cast<size_t>(x.elements()), ncclFloat, ncclSum, comm_, stream_),
            comm_);
}

void NcclCommunicator::all_gather_columns(const Tensor& x, Tensor& out) {
  expect_rank_tensor(x, device_, "all_gather_columns", "x");
  expect_rank_tensor(out, device_, "all_gather_columns", "out");
  if (x.rank() != 2 || out.rank() != 2 || out.dim(0) != x.dim(0) || out.dim(1) != x.dim(1) * size_) {
    fail(ErrorKind::kInternal, "[all_gather_columns] x {} and out {}: out must be [rows, {}·cols]",
         shape_string(x.shape()), shape_string(out.shape()), size_);
  }
  const auto rows = static_cast<size_t>(x.dim(0));
  const auto cols = static_cast<size_t>(x.dim(1));
  const size_t part = rows * cols;
  std::lock_guard lock(mutex_);
  if (aborted_) fail(ErrorKind::kInternal, "[nccl] rank {}: all_gather_columns after abort", rank_);
  const size_t bytes = part * static_cast<size_t>(size_) * sizeof(float);
  if (bytes > scratch_bytes_) {
    // cudaFree waits for the work still reading the old buffer.
    if (scratch_ != nullptr) LOOM_CUDA(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    LOOM_CUDA(cudaMalloc(&scratch_, bytes));
    scratch_bytes_ = bytes;
  }
  auto* scratch = static_cast<float*>(scratch_);
  LOOM_NCCL(ncclAllGather(x.data(), scratch, part, ncclFloat, comm_, stream_), comm_);
  // scratch [size, rows, cols] → out [rows, size·cols]: rank r's block lands in columns [r·cols, (r+1)·cols).
  auto* dst = static_cast<float*>(out.data());
  for (int r = 0; r < size_; ++r) {
    LOOM_CUDA(cudaMemcpy2DAsync(dst + static_cast<size_t>(r) * cols, static_cast<size_t>(size_) * cols * sizeof(float),
                                scratch + static_cast<size_t>(r) * part, cols * sizeof(float), cols * sizeof(float),
                                rows, cudaMemcpyDeviceToDevice, stream_));
  }
}

void NcclCommunicator::broadcast(Tensor& x, int root) {
  expect_rank_tensor(x, device_, "broadcast", "x");
  if (root < 0 || root >= size_) fail(ErrorKind::kInternal, "[broadcast] root {} of {} ranks", root, size_);
  std::lock_guard lock(mutex_);
  if (aborted_) fail(ErrorKind::kInternal, "[nccl] rank {}: broadcast after abort", rank_);
  LOOM_NCCL(ncclBroadcast(x.data(), x.data(), static_cast<size_t>(x.elements()), ncclFloat, root, comm_, stream_),
            comm_);
}

namespace {

class NcclGroup final : public RankGroup {
 public:
  explicit NcclGroup(const std::vector<int>& devices) : devices_(devices) {
    const int count = device_count();
    const int n = static_cast<int>(devices.size());
    if (n < 1) fail(ErrorKind::kUnsupported, "[nccl] a tensor-parallel group needs at least one GPU");
    std::set<int> seen;
    for (int d : devices) {
      if (d < 0 || d >= count) fail(ErrorKind::kUnsupported, "[nccl] GPU {} requested, {} available", d, count);
      if (!seen.insert(d).second) fail(ErrorKind::kUnsupported, "[nccl] GPU {} is listed twice", d);
    }
    for (int d : devices) backends_.push_back(std::make_unique<CudaBackend>(d));
    disable_nvlink_multicast();
    ncclUniqueId id;
    LOOM_NCCL(ncclGetUniqueId(&id), nullptr);
    std::vector<ncclComm_t> comms(static_cast<size_t>(n), nullptr);
    LOOM_NCCL(ncclGroupStart(), nullptr);
    for (int r = 0; r < n; ++r) {
      LOOM_CUDA(cudaSetDevice(devices[static_cast<size_t>(r)]));
      LOOM_NCCL(ncclCommInitRank(&comms[static_cast<size_t>(r)], n, id, r), nullptr);
    }
    LOOM_NCCL(ncclGroupEnd(), nullptr);
    raws_ = comms;
    for (int r = 0; r < n; ++r) {
      comms_.push_back(std::make_unique<NcclCommunicator>(comms[static_cast<size_t>(r)], r, n, devices[r],
                                                          backends_[static_cast<size_t>(r)]->stream()));
    }
    warm_up();
    LOOM_CUDA(cudaSetDevice(devices.front()));
  }

  ~NcclGroup() override {
    for (size_t r = 0; r < devices_.size(); ++r) {
      cudaSetDevice(devices_[r]);
      comms_[r].reset();
      backends_[r].reset();
    }
  }

  int size() const override { return static_cast<int>(devices_.size()); }
  Backend& backend(int rank) override { return *backends_.at(static_cast<size_t>(rank)); }
  Communicator& communicator(int rank) override { return *comms_.at(static_cast<size_t>(rank)); }
  void bind_thread(int rank) override { LOOM_CUDA(cudaSetDevice(devices_.at(static_cast<size_t>(rank)))); }
  void abort() override {
    for (auto& comm : comms_) comm->abort();
  }

 private:
  // One of each collective from this thread (a group call over all ranks), so NCCL sets up its connections now and
  // a later collective never waits inside NCCL for a peer's connection (an abort could not interrupt that).
  void warm_up() {
    const size_t n = devices_.size();
    std::vector<Tensor> buffers;
    for (size_t r = 0; r < n; ++r) buffers.push_back(backends_[r]->allocate(DType::kF32, {static_cast<int64_t>(n)}));
    const auto each = [&](auto&& issue) {
      LOOM_NCCL(ncclGroupStart(), nullptr);
      for (size_t r = 0; r < n; ++r) {
        LOOM_CUDA(cudaSetDevice(devices_[r]));
        issue(r, static_cast<float*>(buffers[r].data()));
      }
      LOOM_NCCL(ncclGroupEnd(), nullptr);
    };
    each([&](size_t r, float* p) {
      LOOM_NCCL(ncclAllReduce(p, p, 1, ncclFloat, ncclSum, raw(r), backends_[r]->stream()), raw(r));
    });
    each([&](size_t r, float* p) {
      LOOM_NCCL(ncclAllGather(p + r, p, 1, ncclFloat, raw(r), backends_[r]->stream()), raw(r));
    });
    each([&](size_t r, float* p) {
      LOOM_NCCL(ncclBroadcast(p, p, 1, ncclFloat, 0, raw(r), backends_[r]->stream()), raw(r));
    });
    for (size_t r = 0; r < n; ++r) {
      LOOM_CUDA(cudaSetDevice(devices_[r]));
      LOOM_CUDA(cudaDeviceSynchronize());
    }
  }
  ncclComm_t raw(size_t r) const { return raws_.at(r); }

  std::vector<int> devices_;
  std::vector<std::unique_ptr<CudaBackend>> backends_;
  std::vector<std::unique_ptr<NcclCommunicator>> comms_;
  std::vector<ncclComm_t> raws_;
};

// This process's rank of a group whose other ranks are other processes.
class NcclProcessGroup final : public RankGroup {
 public:
  NcclProcessGroup(int rank, int size, int device, std::span<const uint8_t> id_bytes)
      : rank_(rank), size_(size), device_(device) {
    static_assert(sizeof(ncclUniqueId) == kNcclIdBytes, "NCCL's unique id changed size");
    if (rank < 0 || rank >= size) fail(ErrorKind::kInternal, "[nccl] rank {} outside a group of {}", rank, size);
    if (id_bytes.size() != sizeof(ncclUniqueId)) {
      fail(ErrorKind::kInvalidRequest, "[nccl] rank 0 sent a unique id of {} bytes, expected {}", id_bytes.size(),
           sizeof(ncclUniqueId));
    }
    const int count = device_count();
    if (device < 0 || device >= count)
      fail(ErrorKind::kUnsupported, "[nccl] GPU {} requested, {} available", device, count);
    backend_ = std::make_unique<CudaBackend>(device);
    disable_nvlink_multicast();
    ncclUniqueId id;
    std::memcpy(&id, id_bytes.data(), sizeof id);
    LOOM_CUDA(cudaSetDevice(device));
    ncclComm_t comm = nullptr;
    LOOM_NCCL(ncclCommInitRank(&comm, size, id, rank), nullptr);
    comm_ = std::make_unique<NcclCommunicator>(comm, rank, size, device, backend_->stream());
    warm_up();
  }

  ~NcclProcessGroup() override {
    cudaSetDevice(device_);
    comm_.reset();
    backend_.reset();
  }

  int size() const override { return size_; }
  bool is_local(int rank) const override { return rank == rank_; }
  Backend& backend(int rank) override {
    expect_local(rank);
    return *backend_;
  }
  Communicator& communicator(int rank) override {
    expect_local(rank);
    return *comm_;
  }
  void bind_thread(int rank) override {
    expect_local(rank);
    LOOM_CUDA(cudaSetDevice(device_));
  }
  void abort() override { comm_->abort(); }

 private:
  void expect_local(int rank) const {
    if (rank != rank_) {
      fail(ErrorKind::kInternal, "[nccl] rank {} runs in another process (this is rank {})", rank, rank_);
    }
  }
  // Every process issues these in the same order, so NCCL connects the ranks now rather than inside a later step.
  void warm_up() {
    Tensor x = backend_->allocate(DType::kF32, {1, 1});
    Tensor all = backend_->allocate(DType::kF32, {1, static_cast<int64_t>(size_)});
    comm_->all_reduce_sum(x);
    comm_->all_gather_columns(x, all);
    comm_->broadcast(x, 0);
    LOOM_CUDA(cudaDeviceSynchronize());
  }

  int rank_;
  int size_;
  int device_;
  std::unique_ptr<CudaBackend> backend_;
  std::unique_ptr<NcclCommunicator> comm_;
};

}  // namespace

std::unique_ptr<RankGroup> make_nccl_group(const std::vector<int>& devices) {
  return std::make_unique<NcclGroup>(devices);
}

std::vector<uint8_t> make_nccl_unique_id() {
  disable_nvlink_multicast();
  ncclUniqueId id;
  LOOM_NCCL(ncclGetUniqueId(&id), nullptr);
  std::vector<uint8_t> bytes(sizeof id);
  std::memcpy(bytes.data(), &id, sizeof id);
  return bytes;
}

std::unique_ptr<RankGroup> make_nccl_process_group(int rank, int size, int device, std::span<const uint8_t> id) {
  return std::make_unique<NcclProcessGroup>(rank, size, device, id);
}

}  // namespace loom::backend::cuda

#endif  // LOOM_HAS_NCCL
