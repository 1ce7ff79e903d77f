#pragma once
// The ranks of one tensor-parallel group inside this process: one backend and one communicator per rank (rank r runs
// on backend(r) and joins the others through communicator(r)). Made by the CPU group (threads sharing host memory)
// or the NCCL group (one GPU per rank, backend/cuda/nccl_communicator.h); driven by model::TensorParallelModel, which
// runs every rank on its own thread.

#include "backend/backend.h"
#include "backend/communicator.h"

namespace loom::backend {

class RankGroup {
 public:
  virtual ~RankGroup() = default;
  virtual int size() const = 0;
  virtual Backend& backend(int rank) = 0;
  virtual Communicator& communicator(int rank) = 0;

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
