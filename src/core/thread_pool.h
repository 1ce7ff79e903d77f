#pragma once
// A fixed pool of worker threads for data-parallel loops (matmul rows, dequantization, image resizing). The caller
// participates in the work, so a pool of N threads runs N+1 ways and a pool of size 0 runs everything inline.
//
// Decode runs a few hundred parallel loops per token, each only tens of microseconds long, so the cost of one
// parallel_for matters as much as its throughput:
//  - the loop body is passed by reference (no std::function, nothing allocated per call);
//  - each participant owns a pre-assigned run of chunks and claims them through its own counter (its own cache
//    line), so there is no shared work counter to fight over; a participant that has finished takes the chunks of one
//    that has not started (a worker that was asleep or descheduled), so nobody waits for a late thread's share;
//  - idle workers spin for a short while (the next loop of a decode step follows within microseconds), then sleep
//    on a futex, so an idle pool costs no CPU.
// A parallel_for called from inside a loop body of the same pool (nested) runs inline, as does a loop no larger
// than its minimum chunk. Calls from several outside threads are serialised. An exception thrown by the body stops
// the claiming of further chunks and is rethrown to the caller once every participant has left the loop.

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace loom {

class ThreadPool {
 public:
  // threads == 0 uses hardware_concurrency() - 1 helpers.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int parallelism() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(begin, end) over disjoint chunks covering [0, count) and returns when all chunks are done.
  // Chunks are at least min_chunk long so tiny loops do not pay for synchronisation; a loop of at most min_chunk
  // items runs inline as one call.
  template <typename Body>
  void parallel_for(int64_t count, Body&& body, int64_t min_chunk = 1) {
    using Fn = std::remove_reference_t<Body>;
    Range range{const_cast<void*>(static_cast<const void*>(std::addressof(body))),
                [](void* f, int64_t begin, int64_t end) { (*static_cast<Fn*>(f))(begin, end); }};
    run(count, min_chunk, range);
  }

  // The process-wide pool.
  static ThreadPool& global();

 private:
  // A non-owning reference to the loop body.
  struct Range {
    void* body;
    void (*call)(void* body, int64_t begin, int64_t end);
  };
  // One participant's pre-assigned chunks [next, end); `next` is claimed with fetch_add by the owner or a thief.
  struct alignas(64) Slot {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };

  void run(int64_t count, int64_t min_chunk, Range body);
  void worker_loop(int index);
  void participate(int self);
  void run_chunk(int64_t chunk);

  std::vector<std::thread> workers_;
  std::unique_ptr<Slot[]> slots_;  // parallelism() entries; slot 0 is the caller's
  std::mutex submit_mutex_;        // one parallel_for at a time from outside the pool

  // The current loop, written by the submitting thread while no worker holds a reference (refs_ == 0) and published
  // by the release store of open_.
  Range body_{};
  int64_t count_ = 0;
  int64_t chunks_ = 0;
  int participants_ = 0;
  uint32_t generation_ = 0;  // the submitter's job counter (never 0)
  std::exception_ptr error_;

  alignas(64) std::atomic<uint32_t> open_{0};   // generation of the loop workers may join; 0 when none is open
  alignas(64) std::atomic<int> refs_{0};        // workers inside (or entering) a loop
  std::atomic<bool> failed_{false};             // the body threw: claim no more chunks
  alignas(64) std::atomic<uint32_t> epoch_{0};  // bumped per loop and at shutdown; idle workers sleep on it
  std::atomic<int> sleepers_{0};                // workers asleep (or about to sleep) on epoch_
  std::atomic<bool> stopping_{false};
};

}  // namespace loom
