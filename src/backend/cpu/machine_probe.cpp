#include "backend/cpu/machine_probe.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace loom::backend::cpu {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// "32768K", "32M" → bytes.
int64_t parse_cache_size(const std::string& text) {
  if (text.empty()) return 0;
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    return 0;
  }
  const char unit = used < text.size() ? text[used] : ' ';
  if (unit == 'K') return value << 10;
  if (unit == 'M') return value << 20;
  if (unit == 'G') return value << 30;
  return value;
}

}  // namespace

int64_t last_level_cache_bytes() {
  // /sys first: under some hypervisors sysconf reports the host's cache, not the guest's.
  int64_t largest = 0;
  for (int index = 0; index < 8; ++index) {
    std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
    if (!in) break;
    std::string text;
    in >> text;
    largest = std::max(largest, parse_cache_size(text));
  }
#ifdef _SC_LEVEL3_CACHE_SIZE
  if (largest == 0) largest = std::max<long>(0, ::sysconf(_SC_LEVEL3_CACHE_SIZE));
#endif
  return largest;
}

MemoryBandwidth measure_memory_bandwidth(ThreadPool& pool, int64_t bytes, int repeats) {
  const auto words = static_cast<int64_t>(std::max<int64_t>(bytes, 1 << 20) / 8 / 64 * 64);
  std::vector<uint64_t> buffer(static_cast<size_t>(words));
  uint64_t* data = buffer.data();
  // Several slices per thread so that a thread slowed by other load does not hold up the pass.
  const int64_t slices = int64_t{pool.parallelism()} * 8;
  const int64_t per_slice = (words + slices - 1) / slices;
  pool.parallel_for(slices, [&](int64_t s0, int64_t s1) {
    for (int64_t i = s0 * per_slice; i < std::min(words, s1 * per_slice); ++i) data[i] = static_cast<uint64_t>(i);
  });

  MemoryBandwidth result;
  result.buffer_bytes = words * 8;
  result.threads = pool.parallelism();
  std::atomic<uint64_t> sink{0};
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto start = Clock::now();
    pool.parallel_for(slices, [&](int64_t s0, int64_t s1) {
      const int64_t begin = s0 * per_slice, end = std::min(words, s1 * per_slice);
      // Four independent sums keep the loads, not the adds, the limit.
      uint64_t a = 0, b = 0, c = 0, d = 0;
      int64_t i = begin;
      for (; i + 4 <= end; i += 4) {
        a += data[i];
        b += data[i + 1];
        c += data[i + 2];
        d += data[i + 3];
      }
      for (; i < end; ++i) a += data[i];
      sink.fetch_add(a + b + c + d, std::memory_order_relaxed);
    });
    result.read_bytes_per_s = std::max(result.read_bytes_per_s, static_cast<double>(words * 8) / seconds_since(start));
  }
  const int64_t half = words / 2;
  const int64_t copy_per_slice = (half + slices - 1) / slices;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto start = Clock::now();
    pool.parallel_for(slices, [&](int64_t s0, int64_t s1) {
      const int64_t begin = s0 * copy_per_slice, end = std::min(half, s1 * copy_per_slice);
      if (end > begin) std::memcpy(data + half + begin, data + begin, static_cast<size_t>(end - begin) * 8);
    });
    result.copy_bytes_per_s = std::max(result.copy_bytes_per_s, static_cast<double>(half * 16) / seconds_since(start));
  }
  return result;
}

double measure_sgemm_flops(int64_t m, int64_t n, int64_t k, int repeats) {
  if (m <= 0 || n <= 0 || k <= 0) fail(ErrorKind::kInvalidRequest, "sgemm shape [{}, {}] × [{}, {}]ᵀ", m, k, n, k);
  std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(n * k)), c(static_cast<size_t>(m * n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) * 0.125f - 0.375f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 5) * 0.125f - 0.25f;
  double best = 0;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto start = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                1.0f, a.data(), static_cast<int>(k), b.data(), static_cast<int>(k), 0.0f, c.data(),
                static_cast<int>(n));
    best = std::max(
        best, 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) / seconds_since(start));
  }
  return best;
}

int blas_threads() {
  return openblas_get_num_threads();
}

}  // namespace loom::backend::cpu
