#pragma once
// A fixed pool of worker threads for data-parallel loops (matmul rows, dequantization, image resizing). The caller
// participates in the work, so a pool of N threads runs N+1 ways and a pool of size 0 runs everything inline.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
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
  // Chunks are at least min_chunk long so tiny loops do not pay for synchronisation.
  void parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& body, int64_t min_chunk = 1);

  // The process-wide pool.
  static ThreadPool& global();

 private:
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::mutex submit_mutex_;  // one parallel_for at a time
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t count_ = 0;
  int64_t chunk_ = 1;
  int64_t next_ = 0;
  int pending_ = 0;  // workers that have not finished the current job
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

}  // namespace loom
