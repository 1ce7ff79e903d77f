#pragma once
// Greedy decoding of a text-only prompt through Model::forward and a paged KV cache, for the tensor-parallel golden
// tests (CPU and CUDA): the same steps for a model on one backend and a tensor-parallel one, so their ids and logits
// can be compared with each other and with the reference's.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/kv_cache.h"
#include "model/model.h"

namespace loom::test_support {

// One step of one sequence; a text token's position is its cache index on every axis (M-RoPE included).
inline Tensor text_step(model::Model& model, backend::KvCache& cache, std::vector<int32_t>& table, int64_t start,
                        const std::vector<int32_t>& ids, bool all_logits) {
  const auto count = static_cast<int64_t>(ids.size());
  cache.reserve(table, start + count);
  backend::Batch batch;
  batch.token_ids = ids;
  batch.position_axes = model.info().position_axes;
  for (int axis = 0; axis < batch.position_axes; ++axis) {
    for (int64_t i = 0; i < count; ++i) batch.positions.push_back(static_cast<int32_t>(start + i));
  }
  batch.sequences.push_back({.token_offset = 0, .token_count = count, .kv_start = start, .block_table = table});
  return model.forward({.batch = &batch, .all_logits = all_logits}, cache);
}

// `count` greedy ids after the prompt; `prompt_logits` receives every prompt position's logits.
inline std::vector<int32_t> greedy_text(model::Model& model, const std::vector<int32_t>& prompt, size_t count,
                                        Tensor& prompt_logits) {
  const auto total = static_cast<int64_t>(prompt.size() + count);
  backend::KvCache cache({.layers = model.info().kv, .blocks = total / backend::kDefaultBlockSize + 2},
                         model.backend());
  std::vector<int32_t> table;
  prompt_logits = text_step(model, cache, table, 0, prompt, true);
  const int64_t vocab = model.info().vocab_size;
  const float* last = prompt_logits.data_as<float>() + (prompt_logits.dim(0) - 1) * vocab;
  std::vector<int32_t> ids{static_cast<int32_t>(std::max_element(last, last + vocab) - last)};
  while (ids.size() < count) {
    const auto start = static_cast<int64_t>(prompt.size() + ids.size() - 1);
    const Tensor logits = text_step(model, cache, table, start, {ids.back()}, false);
    const float* row = logits.data_as<float>();
    ids.push_back(static_cast<int32_t>(std::max_element(row, row + vocab) - row));
  }
  return ids;
}

}  // namespace loom::test_support
