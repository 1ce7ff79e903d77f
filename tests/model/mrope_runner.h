#pragma once
// Runs one sequence through a Model with explicit per-axis positions (M-RoPE [3, n] or plain [1, n]), chunk by chunk,
// with image rows given per prompt token: what the engine's scheduler does for one Qwen3-VL request. The KV cache
// lives on the model's backend; the image rows stay in host memory (the model copies them in).

#include <gtest/gtest.h>

#include <vector>

#include "backend/kv_cache.h"
#include "core/tensor.h"
#include "model/model.h"

namespace loom::model::testing {

// One sequence with three-axis (or one-axis) positions, fed chunk by chunk; image features cover the image rows.
class MropeRunner {
 public:
  MropeRunner(Model& model, int64_t max_tokens)
      : model_(model),
        cache_({.layers = model.info().kv,
                .blocks = (max_tokens + backend::kDefaultBlockSize - 1) / backend::kDefaultBlockSize + 1},
               model.backend()) {}
  ~MropeRunner() { cache_.release(table_); }

  // ids of tokens [length, length + n); positions[axis][i] for each of them; `features` [image tokens, width] in
  // prompt order, `image_rows` the prompt index of each image token.
  Tensor step(const std::vector<int32_t>& ids, const std::vector<std::vector<int32_t>>& positions,
              std::vector<float>& features, const std::vector<int64_t>& image_rows, bool all_logits) {
    const auto count = static_cast<int64_t>(ids.size());
    cache_.reserve(table_, length_ + count);
    backend::Batch batch;
    batch.token_ids = ids;
    batch.position_axes = static_cast<int>(positions.size());
    for (const auto& axis : positions) batch.positions.insert(batch.positions.end(), axis.begin(), axis.end());
    batch.sequences.push_back({.token_offset = 0, .token_count = count, .kv_start = length_, .block_table = table_});
    const int64_t width = model_.info().image_width();
    std::vector<ImageRows> rows;
    for (size_t k = 0; k < image_rows.size(); ++k) {
      const int64_t r = image_rows[k];
      if (r < length_ || r >= length_ + count) continue;
      // Consecutive image rows become one ImageRows.
      if (!rows.empty() && rows.back().row_begin + rows.back().embeddings.dim(0) == r - length_) {
        ImageRows& last = rows.back();
        last.embeddings = Tensor::borrow(DType::kF32, {last.embeddings.dim(0) + 1, width}, last.embeddings.data());
      } else {
        rows.push_back({r - length_, Tensor::borrow(DType::kF32, {1, width}, features.data() + k * width)});
      }
    }
    Tensor logits = model_.forward({.batch = &batch, .images = rows, .all_logits = all_logits}, cache_);
    length_ += count;
    return logits;
  }

 private:
  Model& model_;
  backend::KvCache cache_;
  std::vector<int32_t> table_;
  int64_t length_ = 0;
};

}  // namespace loom::model::testing
