// Matmul on the CPU backend, measured against a reference in the same run (DESIGN.md §7):
//  - GEMV decode (1 activation row) on weights larger than the caches: GB/s of weight bytes read, next to a
//    multithreaded memcpy of the same number of bytes (STREAM "copy": bytes read + written), and their ratio;
//  - GEMM prefill: loom's matmul against a plain OpenBLAS sgemm on f32 weights of the same shape;
//  - quantized GEMV decode (affine-4/g64, affine-8/g64, mxfp4, mxfp8, nvfp4) on ≥ 64 MB of packed bytes: GB/s of
//    packed bytes read (weights + scales + biases) next to the same copy of those bytes, and their ratio (best of
//    alternating rounds);
//  - the quantized GEMV kernel alone, one thread, on a weight that stays in L2: the compute ceiling per core in
//    elements and packed bytes per second of CPU time, which a loaded shared machine disturbs far less than the
//    bandwidth figures; for each instruction set.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/weight_formats.h"
#include "weights/quant/quantize.h"

namespace {

using loom::DType;
using loom::Tensor;

loom::weights::Weight make_weight(DType dtype, int64_t rows, int64_t cols) {
  loom::weights::Weight w;
  w.rows = rows;
  w.cols = cols;
  w.values = Tensor::zeros(dtype, {rows, cols});
  std::mt19937 rng(1);
  if (dtype == DType::kF32) {
    std::uniform_real_distribution<float> dist(-1, 1);
    for (float& v : w.values.span<float>()) v = dist(rng);
  } else {
    // Normal bf16/f16 numbers in a modest range: 0x3800..0x3bff (f16 ~0.5..1), 0x3f00.. (bf16 ~0.5..1).
    const uint16_t base = dtype == DType::kF16 ? 0x3800 : 0x3f00;
    for (uint16_t& v : w.values.span<uint16_t>()) v = static_cast<uint16_t>(base | (rng() & 0x3ff));
  }
  return w;
}

// Seconds for the best of `reps` runs of f.
template <typename F>
double best_seconds(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// STREAM-style copy of `bytes` bytes between two buffers touched in advance, split over the same pool the GEMV uses.
class Copier {
 public:
  explicit Copier(size_t bytes) : bytes_(bytes), src_(bytes, 1), dst_(bytes, 0) {}
  // Seconds for the best of `reps` copies.
  double seconds(int reps) {
    loom::ThreadPool& pool = loom::ThreadPool::global();
    const int64_t chunk = 1 << 20;
    const int64_t chunks = static_cast<int64_t>((bytes_ + chunk - 1) / chunk);
    return best_seconds(reps, [&] {
      pool.parallel_for(chunks, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const size_t at = static_cast<size_t>(i * chunk);
          std::memcpy(dst_.data() + at, src_.data() + at, std::min<size_t>(chunk, bytes_ - at));
        }
      });
      benchmark::DoNotOptimize(dst_.data());
    });
  }
  // Bytes read + written per second.
  double gbps(double seconds) const { return 2.0 * static_cast<double>(bytes_) / seconds / 1e9; }

 private:
  size_t bytes_;
  std::vector<char> src_, dst_;
};

double copy_gbps(size_t bytes) {
  Copier copier(bytes);
  return copier.gbps(copier.seconds(5));
}

void BM_GemvDecode(benchmark::State& state) {
  const DType dtype = state.range(0) == 0 ? DType::kF32 : state.range(0) == 1 ? DType::kBF16 : DType::kF16;
  const int64_t rows = 8192, cols = 4096;
  const auto w = make_weight(dtype, rows, cols);
  Tensor x = Tensor::zeros(DType::kF32, {1, cols});
  for (float& v : x.span<float>()) v = 0.001f;
  Tensor out = Tensor::zeros(DType::kF32, {1, rows});
  loom::backend::cpu::CpuBackend backend;
  const auto bytes = static_cast<double>(w.values.bytes());
  for (auto _ : state) {
    backend.matmul(x, w, out);
    benchmark::DoNotOptimize(out.data());
  }
  const double gemv = bytes * static_cast<double>(state.iterations()) / 1e9;
  state.counters["weight_GBps"] = benchmark::Counter(gemv, benchmark::Counter::kIsRate);
  const double copy = copy_gbps(static_cast<size_t>(bytes));
  state.counters["copy_GBps"] = copy;
  // Computed from the loop's own mean time, so the ratio is in the same run as the copy.
  state.counters["ratio_vs_copy"] = benchmark::Counter(gemv / copy, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(loom::dtype_name(dtype)));
}
BENCHMARK(BM_GemvDecode)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

using loom::weights::QuantMode;
using loom::weights::QuantSpec;
const QuantSpec kQuantSpecs[] = {{QuantMode::kAffine, 4, 64},
                                 {QuantMode::kAffine, 8, 64},
                                 {QuantMode::kMxfp4, 4, 32},
                                 {QuantMode::kMxfp8, 8, 32},
                                 {QuantMode::kNvfp4, 4, 16}};

// A quantized weight of random codes and scales of realistic magnitude (a quantizer pass over 134M floats would
// take longer than the benchmark and its speed does not depend on the values). E4M3 NaN codes are avoided.
loom::weights::Weight make_quantized(const QuantSpec& spec, int64_t rows, int64_t cols) {
  loom::weights::Weight w;
  w.rows = rows;
  w.cols = cols;
  w.quant = spec;
  const int64_t groups = cols / spec.group_size;
  w.values = Tensor::zeros(DType::kU32, {rows, cols * spec.bits / 32});
  std::mt19937 rng(2);
  for (uint32_t& v : w.values.span<uint32_t>()) v = static_cast<uint32_t>(rng());
  if (spec.mode == QuantMode::kMxfp8) {
    auto* bytes = static_cast<uint8_t*>(w.values.data());
    for (size_t i = 0; i < w.values.bytes(); ++i) bytes[i] = (bytes[i] & 0x7F) == 0x7F ? 0x7E : bytes[i];
  }
  if (spec.mode == QuantMode::kAffine) {
    w.scales = Tensor::zeros(DType::kBF16, {rows, groups});
    w.biases = Tensor::zeros(DType::kBF16, {rows, groups});
    for (uint16_t& v : w.scales.span<uint16_t>()) v = static_cast<uint16_t>(0x3c00 | (rng() & 0x7f));  // ~0.008
    for (uint16_t& v : w.biases.span<uint16_t>()) v = static_cast<uint16_t>(0xbe00 | (rng() & 0x7f));  // ~-0.13
  } else {
    w.scales = Tensor::zeros(DType::kU8, {rows, groups});
    // E8M0 2^-7..2^-4; E4M3 0x20..0x27 = 2^-3·(1..1.875).
    const uint8_t base = spec.mode == QuantMode::kNvfp4 ? 0x20 : 120;
    for (uint8_t& v : w.scales.span<uint8_t>()) v = static_cast<uint8_t>(base + (rng() & 3));
  }
  loom::weights::quant::validate(w, "bench");
  return w;
}

void BM_QuantGemvDecode(benchmark::State& state) {
  const QuantSpec spec = kQuantSpecs[state.range(0)];
  // 16384 × 8192: 64 MiB of 4-bit codes, 128 MiB of 8-bit ones, far beyond any cache.
  const int64_t rows = 16384, cols = 8192;
  const auto w = make_quantized(spec, rows, cols);
  Tensor x = Tensor::zeros(DType::kF32, {1, cols});
  for (float& v : x.span<float>()) v = 0.001f;
  Tensor out = Tensor::zeros(DType::kF32, {1, rows});
  loom::backend::cpu::CpuBackend backend;
  const auto bytes = static_cast<double>(w.values.bytes() + w.scales.bytes() + w.biases.bytes());
  for (auto _ : state) {
    backend.matmul(x, w, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["packed_GBps"] =
      benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  // On a shared machine the load changes between measurements, so the ratio pairs the best GEMV and the best copy
  // of five alternating rounds rather than the loop's mean with a later copy.
  Copier copier(static_cast<size_t>(bytes));
  double gemv_best = 1e30, copy_best = 1e30;
  for (int round = 0; round < 5; ++round) {
    gemv_best = std::min(gemv_best, best_seconds(1, [&] { backend.matmul(x, w, out); }));
    copy_best = std::min(copy_best, copier.seconds(1));
  }
  state.counters["packed_GBps_best"] = bytes / gemv_best / 1e9;
  state.counters["copy_GBps"] = copier.gbps(copy_best);
  state.counters["ratio_vs_copy"] = bytes / gemv_best / 1e9 / copier.gbps(copy_best);
  state.counters["packed_MB"] = bytes / 1e6;
  state.SetLabel(loom::weights::quant_spec_name(spec));
}
BENCHMARK(BM_QuantGemvDecode)->DenseRange(0, 4)->Unit(benchmark::kMillisecond)->UseRealTime();

// Arg 0: spec index (kSpecs); arg 1: 0 = generic table, 1 = AVX2 (skipped where unsupported).
void BM_QuantGemvKernel(benchmark::State& state) {
  using loom::backend::cpu::Isa;
  const QuantSpec spec = kQuantSpecs[state.range(0)];
  const Isa isa = state.range(1) == 0 ? Isa::kGeneric : Isa::kAvx2;
  if (!loom::backend::cpu::isa_supported(isa)) {
    state.SkipWithError("instruction set not supported");
    return;
  }
  loom::backend::cpu::force_isa(isa);
  const int64_t rows = 128, cols = 4096;  // 256 KiB of 4-bit codes
  const auto w = make_quantized(spec, rows, cols);
  const auto& kernels = loom::backend::cpu::format_kernels(w, "bench");
  std::vector<float> x(static_cast<size_t>(cols), 0.001f), out(static_cast<size_t>(rows));
  for (auto _ : state) {
    kernels.gemv(w, x.data(), 1, 0, rows, out.data(), rows);
    benchmark::DoNotOptimize(out.data());
  }
  loom::backend::cpu::force_isa(std::nullopt);
  const auto iterations = static_cast<double>(state.iterations());
  const auto bytes = static_cast<double>(w.values.bytes() + w.scales.bytes() + w.biases.bytes());
  state.counters["Gelem_per_s"] =
      benchmark::Counter(static_cast<double>(rows * cols) * iterations / 1e9, benchmark::Counter::kIsRate);
  state.counters["packed_GBps"] = benchmark::Counter(bytes * iterations / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(loom::weights::quant_spec_name(spec) + (isa == Isa::kAvx2 ? " avx2" : " generic"));
}
BENCHMARK(BM_QuantGemvKernel)->ArgsProduct({{0, 1, 2, 3, 4}, {0, 1}});

void BM_GemmPrefill(benchmark::State& state) {
  const DType dtype = state.range(0) == 0 ? DType::kF32 : DType::kBF16;
  const int64_t n = state.range(1), rows = 4096, cols = 4096;
  const auto w = make_weight(dtype, rows, cols);
  const auto w32 = make_weight(DType::kF32, rows, cols);
  Tensor x = Tensor::zeros(DType::kF32, {n, cols});
  for (float& v : x.span<float>()) v = 0.001f;
  Tensor out = Tensor::zeros(DType::kF32, {n, rows});
  loom::backend::cpu::CpuBackend backend;
  for (auto _ : state) {
    backend.matmul(x, w, out);
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 2.0 * static_cast<double>(n * rows * cols);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  const double sgemm = best_seconds(3, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(rows),
                static_cast<int>(cols), 1.0f, x.data_as<float>(), static_cast<int>(cols), w32.values.data_as<float>(),
                static_cast<int>(cols), 0.0f, out.data_as<float>(), static_cast<int>(rows));
  });
  state.counters["sgemm_GFLOPs"] = flops / sgemm / 1e9;
  // loom GFLOP/s ÷ sgemm GFLOP/s = iterations · t_sgemm / elapsed.
  state.counters["ratio_vs_sgemm"] = benchmark::Counter(sgemm, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(loom::dtype_name(dtype)));
}
BENCHMARK(BM_GemmPrefill)
    ->Args({0, 128})
    ->Args({1, 128})
    ->Args({1, 512})
    ->Args({1, 8})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
