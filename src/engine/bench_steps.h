#pragma once
// The pieces both benchmarks (bench.h, tp_bench.h) drive a model with: the batch of one sequence, the greedy choice,
// the finite-logits check and the median of step times.

#include <cstdint>
#include <span>
#include <vector>

#include "backend/batch.h"
#include "core/tensor.h"

namespace loom::engine {

// One sequence's rows [kv_start, kv_start + ids.size()) over `table`, the same position on every axis (text rows).
backend::Batch single_sequence(std::span<const int32_t> ids, int64_t kv_start, const std::vector<int32_t>& table,
                               int position_axes);
// The index of the largest value of host F32 logits (the first on ties).
int32_t argmax(const Tensor& logits);
bool all_finite(const Tensor& logits);
// 0 for no values.
double median(std::vector<double> values);

}  // namespace loom::engine
