#include "core/thread_pool.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace loom {
namespace {

// This process's CPU time (user + system), in seconds.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    for (int64_t count : {1, 2, 3, 7, 1000, 12345}) {
      for (int64_t min_chunk : {1, 5, 64}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
        pool.parallel_for(
            count,
            [&](int64_t begin, int64_t end) {
              ASSERT_LT(begin, end);
              ASSERT_TRUE(end - begin >= min_chunk || end - begin == count);
              for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
            },
            min_chunk);
        for (const auto& h : hits) ASSERT_EQ(h.load(), 1) << "count " << count << " min_chunk " << min_chunk;
      }
    }
  }
}

TEST(ThreadPool, RespectsMinimumChunk) {
  ThreadPool pool(3);
  std::atomic<int> calls = 0;
  pool.parallel_for(
      10, [&](int64_t, int64_t) { calls++; }, 100);
  EXPECT_EQ(calls.load(), 1);
}

TEST(ThreadPool, EmptyRangesCallNothing) {
  ThreadPool pool(1);
  EXPECT_EQ(pool.parallelism(), 2);
  int calls = 0;
  pool.parallel_for(0, [&](int64_t, int64_t) { ++calls; });
  pool.parallel_for(-5, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

// Many small loops back to back, as a decode step runs them: every one must be complete when parallel_for returns
// (the sum is read without synchronisation by the caller right after).
TEST(ThreadPool, ManyShortLoopsEachCompleteOnReturn) {
  ThreadPool pool(3);
  std::vector<int64_t> values(257);
  for (int round = 0; round < 20000; ++round) {
    const int64_t count = 1 + round % 257;
    pool.parallel_for(count, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) values[static_cast<size_t>(i)] = round;
    });
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(values[static_cast<size_t>(i)], round) << "round " << round;
  }
}

// Several outside threads submitting at once are serialised, and each sees only its own loop.
TEST(ThreadPool, ConcurrentSubmitters) {
  ThreadPool pool(3);
  std::vector<std::thread> submitters;
  std::atomic<int> failures = 0;
  for (int s = 0; s < 4; ++s) {
    submitters.emplace_back([&, s] {
      for (int round = 0; round < 500; ++round) {
        const int64_t count = 50 + (s * 37 + round) % 200;
        std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
        pool.parallel_for(count, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)]++;
        });
        for (const auto& h : hits) {
          if (h.load() != 1) failures++;
        }
      }
    });
  }
  for (auto& t : submitters) t.join();
  EXPECT_EQ(failures.load(), 0);
}

// A parallel_for inside a loop body of the same pool runs inline on the calling thread instead of deadlocking.
TEST(ThreadPool, NestedLoopsRunInline) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(64 * 64);
  std::atomic<int> foreign_threads = 0;
  pool.parallel_for(64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto outer_thread = std::this_thread::get_id();
      pool.parallel_for(64, [&](int64_t b, int64_t e) {
        if (std::this_thread::get_id() != outer_thread) foreign_threads++;
        for (int64_t j = b; j < e; ++j) hits[static_cast<size_t>(i * 64 + j)]++;
      });
    }
  });
  for (const auto& h : hits) ASSERT_EQ(h.load(), 1);
  EXPECT_EQ(foreign_threads.load(), 0);
}

TEST(ThreadPool, ExceptionReachesTheCallerAndThePoolStaysUsable) {
  ThreadPool pool(3);
  for (int round = 0; round < 50; ++round) {
    EXPECT_THROW(pool.parallel_for(1000,
                                   [&](int64_t begin, int64_t) {
                                     if (begin >= 500) throw std::runtime_error("boom");
                                   }),
                 std::runtime_error);
    std::atomic<int64_t> total = 0;
    pool.parallel_for(1000, [&](int64_t begin, int64_t end) { total += end - begin; });
    ASSERT_EQ(total.load(), 1000);
  }
}

// Idle workers block instead of spinning: a pool that has just run a loop uses (almost) no CPU while idle.
TEST(ThreadPool, IdleWorkersSleep) {
  ThreadPool pool(3);
  std::atomic<int64_t> total = 0;
  pool.parallel_for(1000, [&](int64_t begin, int64_t end) { total += end - begin; });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the workers' short spin
  const double before = process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double used = process_cpu_seconds() - before;
  // Three spinning workers would burn ~0.9 s here; sleeping ones burn nothing.
  EXPECT_LT(used, 0.05);
  // And they still wake for the next loop.
  pool.parallel_for(1000, [&](int64_t begin, int64_t end) { total += end - begin; });
  EXPECT_EQ(total.load(), 2000);
}

// Shutdown with workers asleep, spinning, or never used.
TEST(ThreadPool, ShutdownInEveryState) {
  { ThreadPool never_used(4); }
  for (int wait_ms : {0, 1, 30}) {
    ThreadPool pool(4);
    std::atomic<int64_t> total = 0;
    pool.parallel_for(100, [&](int64_t begin, int64_t end) { total += end - begin; });
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    EXPECT_EQ(total.load(), 100);
  }
}

}  // namespace
}  // namespace loom
