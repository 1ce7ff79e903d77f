// Dequantization throughput per storage format on a 16384×8192 matrix (64 MB and more per format: larger than the
// caches), in GB/s of stored bytes read (packed codes + scales + biases). The storage is filled with random codes and
// valid random scales directly (the speed does not depend on the values; quantizing 134M floats would dominate).
// Times are per-thread CPU time, so that a busy shared machine does not distort the ratio. Rows are dequantized 16 at a
// time into a small buffer that stays in cache, as a kernel would consume them. Each benchmark also times a memcpy that
// reads the same number of bytes in the same way (chunks copied into one cache-resident buffer) and reports
// dequant/memcpy as `ratio`.
#include <benchmark/benchmark.h>
#include <time.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/float_formats.h"
#include "weights/quant/quantize.h"

namespace {

using loom::DType;
using loom::weights::QuantMode;
using loom::weights::QuantSpec;
using loom::weights::Weight;

constexpr int64_t kRows = 16384, kCols = 8192, kRowsPerChunk = 16;

double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

template <typename T, typename Fill>
void fill(loom::Tensor& t, Fill value) {
  for (T& x : t.span<T>()) x = value();
}

Weight make_weight(QuantMode mode, int bits, int group) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  Weight weight;
  weight.rows = kRows;
  weight.cols = kCols;
  weight.quant = {mode, bits, group};
  if (mode == QuantMode::kNone) {
    weight.values = loom::Tensor::zeros(DType::kBF16, {kRows, kCols});
    fill<uint16_t>(weight.values, [&] { return loom::float_to_bf16(normal(rng)); });
    return weight;
  }
  weight.values = loom::Tensor::zeros(DType::kU32, {kRows, kCols * bits / 32});
  fill<uint32_t>(weight.values, [&] { return static_cast<uint32_t>(rng()); });
  if (mode == QuantMode::kAffine) {
    weight.scales = loom::Tensor::zeros(DType::kBF16, {kRows, kCols / group});
    weight.biases = loom::Tensor::zeros(DType::kBF16, {kRows, kCols / group});
    fill<uint16_t>(weight.scales, [&] { return loom::float_to_bf16(normal(rng) * 0.1f); });
    fill<uint16_t>(weight.biases, [&] { return loom::float_to_bf16(normal(rng)); });
  } else {
    weight.scales = loom::Tensor::zeros(DType::kU8, {kRows, kCols / group});
    fill<uint8_t>(weight.scales, [&] {
      return static_cast<uint8_t>(mode == QuantMode::kNvfp4 ? 0x20 + rng() % 0x30 : 110 + rng() % 10);
    });
  }
  loom::weights::quant::validate(weight, "bench");
  return weight;
}

size_t stored_bytes(const Weight& w) {
  return w.values.bytes() + (w.scales.empty() ? 0 : w.scales.bytes()) + (w.biases.empty() ? 0 : w.biases.bytes());
}

// Seconds per pass of memcpy-reading `bytes` bytes in chunks into a cache-resident buffer (best of a few passes).
double memcpy_seconds(size_t bytes) {
  std::vector<uint8_t> src(bytes, 1);
  std::vector<uint8_t> dst(256 * 1024);
  double best = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    const double start = thread_seconds();
    for (size_t offset = 0; offset < bytes; offset += dst.size()) {
      std::memcpy(dst.data(), src.data() + offset, std::min(dst.size(), bytes - offset));
      benchmark::DoNotOptimize(dst.data());
      benchmark::ClobberMemory();
    }
    best = std::min(best, thread_seconds() - start);
  }
  return best;
}

void run(benchmark::State& state, QuantMode mode, int bits, int group) {
  const Weight weight = make_weight(mode, bits, group);
  const size_t bytes = stored_bytes(weight);
  std::vector<float> out(static_cast<size_t>(kRowsPerChunk * kCols));
  const double copy = memcpy_seconds(bytes);
  double total = 0;
  for (auto _ : state) {
    const double start = thread_seconds();
    for (int64_t r = 0; r < kRows; r += kRowsPerChunk) {
      loom::weights::quant::dequantize_rows(weight, r, r + kRowsPerChunk, out.data());
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
    total += thread_seconds() - start;
  }
  const double dequant_gbps = static_cast<double>(bytes) * static_cast<double>(state.iterations()) / total / 1e9;
  const double memcpy_gbps = static_cast<double>(bytes) / copy / 1e9;
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["dequant_GBps"] = dequant_gbps;
  state.counters["memcpy_GBps"] = memcpy_gbps;
  state.counters["ratio"] = dequant_gbps / memcpy_gbps;
}

void BM_DequantAffine4(benchmark::State& s) {
  run(s, QuantMode::kAffine, 4, 64);
}
void BM_DequantAffine8(benchmark::State& s) {
  run(s, QuantMode::kAffine, 8, 64);
}
void BM_DequantMxfp4(benchmark::State& s) {
  run(s, QuantMode::kMxfp4, 4, 32);
}
void BM_DequantMxfp8(benchmark::State& s) {
  run(s, QuantMode::kMxfp8, 8, 32);
}
void BM_DequantNvfp4(benchmark::State& s) {
  run(s, QuantMode::kNvfp4, 4, 16);
}
void BM_DequantBf16(benchmark::State& s) {
  run(s, QuantMode::kNone, 16, 0);
}

BENCHMARK(BM_DequantAffine4)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DequantAffine8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DequantMxfp4)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DequantMxfp8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DequantNvfp4)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DequantBf16)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
