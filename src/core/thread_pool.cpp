#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <climits>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace loom {
namespace {

// Chunks per participant: enough for a finished thread to take over part of a late one's share, few enough that
// claiming stays negligible.
constexpr int64_t kChunksPerWay = 4;
// How long an idle worker polls for the next loop before it sleeps. The loops of one decode step follow each other
// within microseconds; the gap between steps (sampling, scheduling) is longer and the workers sleep through it.
constexpr auto kWorkerSpin = std::chrono::microseconds(100);
// Polls of a waiting submitter between yields: a participant it waits for may be descheduled on a busy machine.
constexpr int kWaitSpins = 1 << 12;

// The pool whose loop body this thread is running (workers: always their own pool), to run nested loops inline.
thread_local const ThreadPool* t_inside = nullptr;

// Blocks while `word` still holds `expected` (or until a wake-up; callers re-check). A raw futex on Linux: the
// std::atomic::wait of the toolchain in use was seen to miss a notify_all and never return.
void wait_while_equal(std::atomic<uint32_t>& word, uint32_t expected) {
#if defined(__linux__)
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
  word.wait(expected);
#endif
}

void wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
  word.notify_all();
#endif
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// First item of chunk c when `count` items are split into `chunks` near-equal chunks.
inline int64_t chunk_start(int64_t c, int64_t count, int64_t chunks) {
  const int64_t base = count / chunks, extra = count % chunks;
  return c * base + std::min(c, extra);
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) - 1;
  slots_ = std::make_unique<Slot[]>(static_cast<size_t>(threads) + 1);
  workers_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i + 1); });
}

ThreadPool::~ThreadPool() {
  stopping_.store(true);
  epoch_.fetch_add(1);
  wake_all(epoch_);
  for (auto& worker : workers_) worker.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

void ThreadPool::run_chunk(int64_t chunk) {
  if (failed_.load(std::memory_order_relaxed)) return;
  try {
    body_.call(body_.body, chunk_start(chunk, count_, chunks_), chunk_start(chunk + 1, count_, chunks_));
  } catch (...) {
    if (!failed_.exchange(true)) error_ = std::current_exception();
  }
}

void ThreadPool::participate(int self) {
  // Own chunks first, then those of every other participant that has not claimed them yet.
  for (int k = 0; k < participants_; ++k) {
    Slot& slot = slots_[static_cast<size_t>((self + k) % participants_)];
    while (slot.next.load(std::memory_order_relaxed) < slot.end) {
      const int64_t chunk = slot.next.fetch_add(1, std::memory_order_relaxed);
      if (chunk >= slot.end) break;
      run_chunk(chunk);
    }
  }
}

void ThreadPool::worker_loop(int index) {
  t_inside = this;
  // Starts from the epoch's initial value, so a thread that starts late (even after the destructor's bump) still
  // sees a change and checks stopping_.
  uint32_t seen = 0;
  uint32_t joined = 0;
  for (;;) {
    // Spin briefly for the next loop, then sleep until the epoch moves.
    const auto spin_until = std::chrono::steady_clock::now() + kWorkerSpin;
    for (int polls = 0; epoch_.load(std::memory_order_relaxed) == seen; ++polls) {
      if ((polls & 63) == 63 && std::chrono::steady_clock::now() > spin_until) {
        sleepers_.fetch_add(1);
        wait_while_equal(epoch_, seen);
        sleepers_.fetch_sub(1);
      } else {
        cpu_relax();
      }
    }
    seen = epoch_.load();
    if (stopping_.load()) return;
    // Take a reference before looking at the loop, so its submitter cannot retire it (and start the next one)
    // while this thread reads it; a loop already closed shows open_ == 0.
    refs_.fetch_add(1);
    const uint32_t generation = open_.load();
    if (generation != 0 && generation != joined) {
      joined = generation;
      if (index < participants_) participate(index);
    }
    refs_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::run(int64_t count, int64_t min_chunk, Range body) {
  if (count <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  if (workers_.empty() || count <= min_chunk || t_inside == this) {
    body.call(body.body, 0, count);
    return;
  }
  std::lock_guard submit(submit_mutex_);
  const int64_t ways = parallelism();
  const int64_t chunks = std::min(count / min_chunk, ways * kChunksPerWay);  // each at least min_chunk long
  const int participants = static_cast<int>(std::min(ways, chunks));
  for (int p = 0; p < participants; ++p) {
    Slot& slot = slots_[static_cast<size_t>(p)];
    slot.next.store(chunks * p / participants, std::memory_order_relaxed);
    slot.end = chunks * (p + 1) / participants;
  }
  body_ = body;
  count_ = count;
  chunks_ = chunks;
  participants_ = participants;
  error_ = nullptr;
  failed_.store(false, std::memory_order_relaxed);
  if (++generation_ == 0) generation_ = 1;
  open_.store(generation_);
  epoch_.fetch_add(1);
  if (sleepers_.load() > 0) wake_all(epoch_);

  const ThreadPool* outer = t_inside;
  t_inside = this;
  participate(0);
  t_inside = outer;

  // Every chunk is claimed; close the loop and wait for the workers still inside it.
  open_.store(0);
  for (int polls = 1; refs_.load(std::memory_order_acquire) != 0; ++polls) {
    if (polls % kWaitSpins == 0) {
      std::this_thread::yield();
    } else {
      cpu_relax();
    }
  }
  body_ = {};
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace loom
