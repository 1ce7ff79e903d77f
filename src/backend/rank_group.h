#pragma once
// The ranks of one tensor-parallel group as this process sees them: one backend and one communicator per local rank
// (rank r runs on backend(r) and joins the others through communicator(r)). Made by the CPU group (threads sharing
// host memory) or the NCCL group (one GPU per rank, backend/cuda/nccl_communicator.h), where every rank is local and
// model::TensorParallelModel runs each on its own thread; or by a process group (one process per rank: the socket
// group of backend/cpu/socket_communicator.h, the NCCL process group), where only this process's rank is local and
// the others are `loom tp-worker` processes.

#include "backend/backend.h"
#include "backend/communicator.h"

namespace loom::backend {

class RankGroup {
 public:
  virtual ~RankGroup() = default;
  virtual int size() const = 0;
  virtual Backend& backend(int rank) = 0;
  virtual Communicator& communicator(int rank) = 0;
  // False for a rank that runs in another process: backend() and communicator() throw for it.
  virtual bool is_local(int /*rank*/) const { return true; }

  // Prepares the calling thread to issue rank `rank`'s work (CUDA: makes the rank's GPU the thread's current device).
  // A rank's worker thread calls it once; the thread that runs rank 0 calls it before each step, since that thread is
  // the caller's. Cheap; the CPU group needs nothing.
  virtual void bind_thread(int /*rank*/) {}

  // Called when one rank failed in the middle of a step: the others may be waiting in a collective for it and would
  // wait forever. Unblocks them (their collectives throw or return garbage; the driver discards the step) and leaves
  // the group unusable. Callable from any thread, more than once.
  virtual void abort() = 0;
};

}  // namespace loom::backend
