#pragma once
// Tensor-parallel collectives between threads of one process: each thread stands in for a rank (its own CpuBackend,
// its own shard of the model) and the group's per-rank communicators rendezvous on a mutex and condition variable.
// Used to prove sharded = unsharded on the CPU, and to run a sharded model without GPUs.
//
// Every collective is one barrier: the last rank to arrive does the group's work (the sum in rank order 0 … N−1, the
// gather, the root's copy) into a shared buffer, then every rank copies the buffer out. So all ranks get bit-identical
// results, whichever thread arrives last. Host (CPU backend) F32 tensors only. A rank whose tensor disagrees in size
// with the others', or that calls another collective than they do, makes the collective throw kInternal on every rank.

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend/communicator.h"

namespace loom::backend::cpu {

class InProcessGroup {
 public:
  explicit InProcessGroup(int size);
  ~InProcessGroup();
  InProcessGroup(const InProcessGroup&) = delete;
  InProcessGroup& operator=(const InProcessGroup&) = delete;

  int size() const { return size_; }
  // Rank r's communicator (0 ≤ r < size), owned by the group; each is used by one thread at a time.
  Communicator& rank(int r);

  // For a rank that failed in the middle of a step while the others wait for it in a collective: wakes them, and
  // every collective from then on (theirs and any later one) throws kInternal. The group stays unusable. Callable from
  // any thread, more than once.
  void abort();

 private:
  class RankCommunicator;
  friend class RankCommunicator;

  // What a rank hands in at a collective: its tensor's data and element count.
  struct Contribution {
    const char* op = nullptr;  // which collective the rank called (a static string)
    const float* data = nullptr;
    float* target = nullptr;
    int64_t elements = 0;
  };

  // Rank `r` publishes `mine` (its op named) and waits for the rest; the last rank to arrive runs `combine` (under the
  // lock) and wakes the others. Throws kInternal on every rank when combine reported a problem.
  template <typename Combine>
  void rendezvous(int r, const Contribution& mine, Combine&& combine);

  int size_;
  std::vector<std::unique_ptr<RankCommunicator>> ranks_;
  std::mutex mutex_;
  std::condition_variable arrived_all_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  std::vector<Contribution> slots_;
  std::vector<float> buffer_;  // the collective's result, copied out by every rank
  std::string error_;          // non-empty: the last collective failed (same message on every rank)
  bool aborted_ = false;
};

}  // namespace loom::backend::cpu
