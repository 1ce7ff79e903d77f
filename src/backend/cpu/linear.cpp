// Embedding gather, matmul against a Weight, bias add.
//
// Matmul has two regimes. Decode (few activation rows) is bound by reading the weight: a fused GEMV streams each
// weight row once through the SIMD dot of every activation row, threads splitting the output rows. Prefill (many
// rows) is bound by arithmetic: OpenBLAS sgemm, fed directly for f32 weights and through f32 tiles decoded on the
// fly for every other format, so no full-precision copy of the model ever exists.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/check.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/weight_formats.h"

namespace loom::backend::cpu {
namespace {

// Up to this many activation rows the GEMV path wins: the weight row is still in L1 when the next activation row
// needs it, and sgemm's packing overhead buys nothing (bench/matmul_bench.cpp measures the crossover).
constexpr int64_t kGemvMaxRows = 4;
// Output rows per thread task in GEMV: enough to amortise scheduling, small enough to balance.
constexpr int64_t kGemvGrain = 16;
// Bytes of decoded f32 weight per prefill tile: fits L2/L3 comfortably while sgemm works on it.
constexpr int64_t kTileBytes = int64_t{2} << 20;

}  // namespace

void CpuBackend::embedding(const weights::Weight& table, std::span<const int32_t> ids, float scale, Tensor& out) {
  const FormatKernels& kernels = format_kernels(table, "embedding");
  expect_f32(out, "embedding", "out");
  expect_shape(out, {static_cast<int64_t>(ids.size()), table.cols}, "embedding", "out");
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= table.rows) {
      fail(ErrorKind::kInvalidRequest, "[embedding] token id {} outside the vocabulary of {}", ids[t], table.rows);
    }
  }
  float* dst = out.data_as<float>();
  parallel(static_cast<int64_t>(ids.size()), 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* row = dst + t * table.cols;
      kernels.decode(table, ids[static_cast<size_t>(t)], ids[static_cast<size_t>(t)] + 1, row);
      if (scale != 1.0f) {
        for (int64_t c = 0; c < table.cols; ++c) row[c] *= scale;
      }
    }
  });
}

void CpuBackend::embedding_shard(const weights::Weight& table, std::span<const int32_t> ids, int64_t first_id,
                                 float scale, Tensor& out) {
  const FormatKernels& kernels = format_kernels(table, "embedding_shard");
  expect_f32(out, "embedding_shard", "out");
  expect_shape(out, {static_cast<int64_t>(ids.size()), table.cols}, "embedding_shard", "out");
  float* dst = out.data_as<float>();
  parallel(static_cast<int64_t>(ids.size()), 8, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* row = dst + t * table.cols;
      const int64_t local = ids[static_cast<size_t>(t)] - first_id;
      if (local < 0 || local >= table.rows) {
        std::fill_n(row, table.cols, 0.0f);
        continue;
      }
      kernels.decode(table, local, local + 1, row);
      if (scale != 1.0f) {
        for (int64_t c = 0; c < table.cols; ++c) row[c] *= scale;
      }
    }
  });
}

void CpuBackend::matmul(const Tensor& x, const weights::Weight& w, Tensor& out) {
  const FormatKernels& kernels = format_kernels(w, "matmul");
  expect_f32(x, "matmul", "x");
  expect_f32(out, "matmul", "out");
  if (last_dim(x) != w.cols) {
    fail(ErrorKind::kInternal, "[matmul] x has shape {} but the weight is [{}, {}]", shape_string(x.shape()), w.rows,
         w.cols);
  }
  const int64_t n = x.elements() / w.cols;
  if (out.elements() != n * w.rows || last_dim(out) != w.rows) {
    fail(ErrorKind::kInternal, "[matmul] out has shape {}, expected [{}, {}]", shape_string(out.shape()), n, w.rows);
  }
  if (n == 0 || w.rows == 0) return;
  const float* xs = x.data_as<float>();
  float* ys = out.data_as<float>();
  if (w.cols == 0) {
    std::fill_n(ys, n * w.rows, 0.0f);
    return;
  }

  if (n <= kGemvMaxRows) {
    parallel(w.rows, kGemvGrain, [&](int64_t r0, int64_t r1) { kernels.gemv(w, xs, n, r0, r1, ys + r0, w.rows); });
    return;
  }

  const auto sgemm = [&](const float* weight_rows, int64_t rows, float* c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(rows),
                static_cast<int>(w.cols), 1.0f, xs, static_cast<int>(w.cols), weight_rows, static_cast<int>(w.cols),
                0.0f, c, static_cast<int>(w.rows));
  };
  if (w.values.dtype() == DType::kF32 && w.quant.mode == weights::QuantMode::kNone) {
    sgemm(w.values.data_as<float>(), w.rows, ys);
    return;
  }
  const int64_t tile_rows = std::clamp<int64_t>(kTileBytes / (4 * w.cols) / 16 * 16, 16, w.rows);
  std::vector<float> tile(static_cast<size_t>(tile_rows * w.cols));
  for (int64_t r0 = 0; r0 < w.rows; r0 += tile_rows) {
    const int64_t rows = std::min(tile_rows, w.rows - r0);
    parallel(rows, 4, [&](int64_t a, int64_t b) { kernels.decode(w, r0 + a, r0 + b, tile.data() + a * w.cols); });
    sgemm(tile.data(), rows, ys + r0);
  }
}

void CpuBackend::add_bias(Tensor& x, const Tensor& bias) {
  expect_f32(x, "add_bias", "x");
  expect_f32(bias, "add_bias", "bias");
  const int64_t cols = last_dim(x);
  expect_shape(bias, {cols}, "add_bias", "bias");
  float* xs = x.data_as<float>();
  const float* b = bias.data_as<float>();
  const int64_t rows = cols == 0 ? 0 : x.elements() / cols;
  parallel(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t c = 0; c < cols; ++c) xs[r * cols + c] += b[c];
    }
  });
}

}  // namespace loom::backend::cpu
