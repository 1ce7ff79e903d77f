#pragma once
// Collectives between the ranks of one tensor-parallel group: each rank holds one shard of every sharded weight and
// runs the same forward pass on its own backend; the communicator joins their partial results. Every rank calls the
// same collectives in the same order with tensors of the same shape (a collective is a rendezvous).
//
// Implementations: an in-process one for the CPU (threads stand in for ranks; tests prove sharded = unsharded with
// it) and NCCL for GPUs (backend/cuda). Tensors are F32, contiguous, in the memory of the calling rank's backend.

#include <cstdint>

#include "core/tensor.h"

namespace loom::backend {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // x ← Σ over ranks of x, element-wise, in place (the join after a row-parallel matmul).
  virtual void all_reduce_sum(Tensor& x) = 0;
  // out [rows, size()·cols] ← every rank's x [rows, cols] side by side in rank order (vocab-parallel logits).
  virtual void all_gather_columns(const Tensor& x, Tensor& out) = 0;
  // x on every rank ← root's x.
  virtual void broadcast(Tensor& x, int root) = 0;
};

}  // namespace loom::backend
