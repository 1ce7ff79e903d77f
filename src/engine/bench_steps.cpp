#include "engine/bench_steps.h"

#include <algorithm>
#include <cmath>

namespace loom::engine {

backend::Batch single_sequence(std::span<const int32_t> ids, int64_t kv_start, const std::vector<int32_t>& table,
                               int position_axes) {
  backend::Batch batch;
  const auto tokens = static_cast<int64_t>(ids.size());
  batch.sequences.push_back({.token_offset = 0, .token_count = tokens, .kv_start = kv_start, .block_table = table});
  batch.token_ids.assign(ids.begin(), ids.end());
  batch.position_axes = position_axes;
  for (int axis = 0; axis < position_axes; ++axis) {
    for (int64_t i = 0; i < tokens; ++i) batch.positions.push_back(static_cast<int32_t>(kv_start + i));
  }
  return batch;
}

int32_t argmax(const Tensor& logits) {
  const auto values = logits.span<const float>();
  return static_cast<int32_t>(std::max_element(values.begin(), values.end()) - values.begin());
}

bool all_finite(const Tensor& logits) {
  const auto values = logits.span<const float>();
  return std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); });
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

}  // namespace loom::engine
