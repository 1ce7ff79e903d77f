// Row-wise softmax, argmax and top-k over logits: the pieces a sampler needs.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu/check.h"
#include "backend/cpu/cpu_backend.h"

namespace loom::backend::cpu {
namespace {

int64_t rows_of(const Tensor& x, std::string_view op) {
  expect_f32(x, op, "x");
  const int64_t n = last_dim(x);
  if (n <= 0) fail(ErrorKind::kInternal, "[{}] rows of x must not be empty", op);
  return x.elements() / n;
}

}  // namespace

void CpuBackend::softmax(const Tensor& x, Tensor& out) {
  const int64_t rows = rows_of(x, "softmax");
  expect_f32(out, "softmax", "out");
  expect_same_shape(x, out, "softmax", "out");
  const int64_t n = last_dim(x);
  const float* in = x.data_as<float>();
  float* o = out.data_as<float>();
  parallel(rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = in + r * n;
      float* dst = o + r * n;
      const float max_value = *std::max_element(row, row + n);
      double total = 0;  // a vocabulary of 262k terms: accumulate in double
      for (int64_t i = 0; i < n; ++i) {
        dst[i] = std::exp(row[i] - max_value);
        total += dst[i];
      }
      const auto inv = static_cast<float>(1.0 / total);
      for (int64_t i = 0; i < n; ++i) dst[i] *= inv;
    }
  });
}

void CpuBackend::argmax(const Tensor& x, std::span<int32_t> out) {
  const int64_t rows = rows_of(x, "argmax");
  if (static_cast<int64_t>(out.size()) != rows)
    fail(ErrorKind::kInternal, "[argmax] out holds {} of {} rows", out.size(), rows);
  const int64_t n = last_dim(x);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x.data_as<float>() + r * n;
    out[static_cast<size_t>(r)] = static_cast<int32_t>(std::max_element(row, row + n) - row);
  }
}

void CpuBackend::top_k(const Tensor& x, int k, std::span<int32_t> indices, std::span<float> values) {
  const int64_t rows = rows_of(x, "top_k");
  const int64_t n = last_dim(x);
  if (k <= 0 || k > n) fail(ErrorKind::kInternal, "[top_k] k = {} for rows of {}", k, n);
  if (static_cast<int64_t>(indices.size()) != rows * k || static_cast<int64_t>(values.size()) != rows * k) {
    fail(ErrorKind::kInternal, "[top_k] outputs must hold {} × {} entries", rows, k);
  }
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x.data_as<float>() + r * n;
    std::iota(order.begin(), order.end(), 0);
    // Larger value first, then lower index: a total order, so the result does not depend on the sort algorithm.
    const auto before = [row](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
    for (int i = 0; i < k; ++i) {
      indices[static_cast<size_t>(r * k + i)] = order[static_cast<size_t>(i)];
      values[static_cast<size_t>(r * k + i)] = row[order[static_cast<size_t>(i)]];
    }
  }
}

}  // namespace loom::backend::cpu
