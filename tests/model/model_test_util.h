#pragma once
// Helpers for the model tests: the golden fixture paths, a scratch directory, reading float32 dumps and running a
// prompt through a Model step by step the way the engine will (ragged Batch, paged KvCache, image rows).

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "backend/kv_cache.h"
#include "core/tensor.h"
#include "model/model.h"
#include "support/scratch_dir.h"

namespace loom::model::testing {

inline std::filesystem::path golden_dir() {
  return std::filesystem::path(LOOM_SOURCE_DIR) / "tests/golden/models";
}

using loom::test_support::ScratchDir;

inline std::vector<float> read_f32_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

// max|a − b| / max|b| over one row: the logits metric of the golden tests.
inline double row_relative_error(const float* a, const float* b, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

// log_softmax of one row in double.
inline std::vector<double> log_softmax(const float* row, int64_t n) {
  double max = row[0];
  for (int64_t i = 1; i < n; ++i) max = std::max(max, static_cast<double>(row[i]));
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += std::exp(row[i] - max);
  const double log_total = std::log(total) + max;
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = row[i] - log_total;
  return out;
}

// An image: its soft tokens occupy prompt tokens [start, end); `embeddings` come from Model::encode_image.
struct PromptImage {
  int64_t start = 0, end = 0;
  Tensor embeddings;
};

// One sequence in a KV cache, fed chunk by chunk.
class SequenceRunner {
 public:
  SequenceRunner(Model& model, int64_t max_tokens)
      : model_(model),
        cache_({.layers = model.info().kv,
                .blocks = (max_tokens + backend::kDefaultBlockSize - 1) / backend::kDefaultBlockSize + 1},
               model.backend()) {}
  ~SequenceRunner() { cache_.release(table_); }

  int64_t length() const { return length_; }

  // Runs ids (tokens length() … length()+ids.size()−1); images whose spans lie inside this chunk are scattered,
  // and every image span already complete in the cache is passed as bidirectional. Returns [rows, vocab] logits.
  Tensor step(const std::vector<int32_t>& ids, const std::vector<PromptImage>& images, bool all_logits) {
    const auto count = static_cast<int64_t>(ids.size());
    cache_.reserve(table_, length_ + count);
    backend::Batch batch;
    batch.token_ids = ids;
    for (int64_t i = 0; i < count; ++i) batch.positions.push_back(static_cast<int32_t>(length_ + i));
    backend::SequenceSlice slice{.token_offset = 0, .token_count = count, .kv_start = length_, .block_table = table_};
    std::vector<ImageRows> rows;
    for (const PromptImage& image : images) {
      if (image.end <= length_ + count) slice.bidirectional_spans.push_back({image.start, image.end});
      if (image.start >= length_ && image.end <= length_ + count) {
        rows.push_back({.row_begin = image.start - length_, .embeddings = image.embeddings});
      }
    }
    batch.sequences.push_back(std::move(slice));
    const Tensor logits = model_.forward({.batch = &batch, .images = rows, .all_logits = all_logits}, cache_);
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
