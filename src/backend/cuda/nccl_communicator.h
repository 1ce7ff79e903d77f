#pragma once
// Tensor parallelism across the GPUs of one host: the Communicator contract over NCCL, and the group of ranks (one
// CudaBackend and one NcclCommunicator per GPU) that model::TensorParallelModel drives from one thread per GPU.
//
// Collectives are issued on the stream of the rank's CudaBackend, the stream every op of that backend runs on, so they
// are ordered with the ops before and after them without any event. NVLink multicast (NVLS) is switched off
// (NCCL_NVLS_ENABLE=0, set by loom itself before NCCL starts).
//
// This header needs neither CUDA nor NCCL headers. It is available when LOOM_HAS_NCCL is defined (the CUDA backend
// was built with NCCL).

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "backend/communicator.h"
#include "backend/rank_group.h"

struct ncclComm;     // nccl.h: typedef struct ncclComm* ncclComm_t
struct CUstream_st;  // cudaStream_t points to it

namespace loom::backend::cuda {

// Sets NCCL_NVLS_ENABLE=0, overwriting any value: loom keeps NVLink multicast off. Called before any NCCL
// initialisation (the group does it itself).
void disable_nvlink_multicast();

class NcclCommunicator final : public Communicator {
 public:
  // Owns `comm`: rank `rank` of `size`, on GPU `device`, issuing on `stream` (the rank backend's).
  NcclCommunicator(ncclComm* comm, int rank, int size, int device, CUstream_st* stream);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const { return device_; }

  // Tensors: F32, contiguous, in this rank's GPU memory; the calling thread's current device is this rank's GPU.
  // Failures throw loom::Error(kInternal) "[nccl] …" with NCCL's message.
  void all_reduce_sum(Tensor& x) override;
  void all_gather_columns(const Tensor& x, Tensor& out) override;
  void broadcast(Tensor& x, int root) override;

  // ncclCommAbort: kernels of this communicator still waiting for a peer stop, and every later collective throws.
  // Callable from any thread (it restores the caller's current device).
  void abort();

 private:
  ncclComm* comm_;
  int rank_;
  int size_;
  int device_;
  CUstream_st* stream_;
  std::mutex mutex_;  // an enqueue and abort() never overlap
  bool aborted_ = false;
  void* scratch_ = nullptr;  // [size, rows, cols] of all_gather_columns, grown as needed
  size_t scratch_bytes_ = 0;
};

// Rank r on GPU devices[r]: a CudaBackend(devices[r]) and an NcclCommunicator made from one ncclUniqueId with
// ncclCommInitRank per rank in one NCCL group call. Connections are set up before it returns (one all-reduce,
// all-gather and broadcast), so later collectives only enqueue. Throws kUnsupported for a GPU that is not there or
// listed twice, kInternal with NCCL's message when initialisation fails.
std::unique_ptr<RankGroup> make_nccl_group(const std::vector<int>& devices);

// One process per rank (a group across processes or hosts, model/remote_ranks.h). Rank 0 makes the unique id (NVLink
// multicast switched off first) and sends its bytes to every worker over the join connection; each process then
// makes its group: rank `rank` of `size` on GPU `device`, ncclCommInitRank with that id (NCCL's own bootstrap then
// connects the processes), and one all-reduce, all-gather and broadcast, which every rank issues in the same order,
// so connections are set up before it returns. Only `rank` is local (RankGroup::is_local). Throws kInvalidRequest for
// id bytes of the wrong size, kUnsupported for a missing GPU, kInternal with NCCL's message when initialisation fails.
inline constexpr size_t kNcclIdBytes = 128;
std::vector<uint8_t> make_nccl_unique_id();
std::unique_ptr<RankGroup> make_nccl_process_group(int rank, int size, int device, std::span<const uint8_t> id);

}  // namespace loom::backend::cuda
