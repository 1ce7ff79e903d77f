#pragma once
// A small deterministic model for engine tests, and an independent reference for what it generates.
//
// The model writes one number per token into the paged KV cache (the "key": the token id, or for an image row the
// first component of the embedding handed in through ImageRows; the "value": the token's combined position
// Σ (axis+1)·position[axis]) and its next-token logits peak at f(S, p) where S is the sum over the sequence's cached
// tokens of key + 3·value, read back through the block table, and p is the last row's combined position. A wrong
// block table, kv_start, position or image row therefore changes the tokens. The reference recomputes the same
// recurrence from the prompt alone, without a cache, a batch or an engine.

#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/batch.h"
#include "backend/kv_cache.h"
#include "core/error.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace loom::engine::testing {

inline constexpr int64_t kVocab = 64;
inline constexpr int32_t kEos = 60;
inline constexpr int32_t kImageToken = 63;
inline constexpr int64_t kHidden = 2;
inline constexpr int32_t kTargets = 60;  // generated ids are 0..59

inline int32_t next_token(double sum, int64_t position) {
  const auto s = static_cast<int64_t>(sum);
  return static_cast<int32_t>((((s * 7 + position * 3 + 1) % kTargets) + kTargets) % kTargets);
}

// What one forward call received (for assertions about packing).
struct ForwardRecord {
  std::vector<backend::SequenceSlice> slices;
  std::vector<int32_t> token_ids;
  struct Rows {
    int64_t row_begin, rows;
    std::vector<float> first_column;
  };
  std::vector<Rows> images;
};

class TestModel : public model::Model {
 public:
  explicit TestModel(int position_axes = 1, bool bidirectional_images = false, int64_t context = 4096) {
    info_.architecture = "TestModel";
    info_.vocab_size = kVocab;
    info_.hidden_size = kHidden;
    info_.context_length = context;
    info_.position_axes = position_axes;
    info_.kv = {{1, 2}, {1, 2}};  // two layers: the second mirrors the first, proving per-layer arenas
    info_.stop_ids = {kEos};
    info_.image_token_id = kImageToken;
    info_.bidirectional_images = bidirectional_images;
  }

  model::ModelInfo& mutable_info() { return info_; }
  const model::ModelInfo& info() const override { return info_; }

  // Image embedding row r = [100·pixel_values[0] + r, 0]; a negative pixel value fails the encoder.
  Tensor encode_image(const model::ImagePixels& image) override {
    std::lock_guard lock(mutex_);
    ++encode_calls_;
    if (image.pixel_values.data_as<float>()[0] < 0) fail(ErrorKind::kInvalidRequest, "unreadable image");
    const int64_t width = info_.image_width();  // wider than kHidden when a test sets image_embedding_width
    Tensor out = Tensor::zeros(DType::kF32, {image.soft_tokens, width});
    const float base = 100.0f * image.pixel_values.data_as<float>()[0];
    for (int64_t r = 0; r < image.soft_tokens; ++r) out.data_as<float>()[r * width] = base + static_cast<float>(r);
    return out;
  }

  Tensor forward(const model::StepInputs& step, backend::KvCache& cache) override {
    const backend::Batch& b = *step.batch;
    b.validate(cache.block_size());
    int64_t call = 0;
    {
      std::lock_guard lock(mutex_);
      ForwardRecord record{b.sequences, b.token_ids, {}};
      for (const model::ImageRows& rows : step.images) {
        ForwardRecord::Rows r{rows.row_begin, rows.embeddings.dim(0), {}};
        for (int64_t i = 0; i < r.rows; ++i) {
          r.first_column.push_back(rows.embeddings.data_as<float>()[i * info_.image_width()]);
        }
        record.images.push_back(std::move(r));
      }
      records_.push_back(std::move(record));
      call = static_cast<int64_t>(records_.size());
    }
    if (on_forward) on_forward(call);

    const int64_t tokens = b.tokens();
    std::vector<double> keys(static_cast<size_t>(tokens));
    std::vector<char> covered(static_cast<size_t>(tokens), 0);
    for (int64_t t = 0; t < tokens; ++t) keys[static_cast<size_t>(t)] = b.token_ids[static_cast<size_t>(t)];
    for (const model::ImageRows& rows : step.images) {
      if (rows.embeddings.rank() != 2 || rows.embeddings.dim(1) != info_.image_width()) {
        fail(ErrorKind::kInternal, "image rows");
      }
      for (int64_t r = 0; r < rows.embeddings.dim(0); ++r) {
        const int64_t row = rows.row_begin + r;
        if (row < 0 || row >= tokens || b.token_ids[static_cast<size_t>(row)] != kImageToken || covered[row]) {
          fail(ErrorKind::kInternal, "image row {} lands on a wrong or repeated row", row);
        }
        covered[static_cast<size_t>(row)] = 1;
        keys[static_cast<size_t>(row)] = rows.embeddings.data_as<float>()[r * info_.image_width()];
      }
    }
    for (int64_t t = 0; t < tokens; ++t) {
      if (b.token_ids[static_cast<size_t>(t)] == kImageToken && !covered[static_cast<size_t>(t)]) {
        fail(ErrorKind::kInternal, "image token at row {} got no embedding", t);
      }
    }
    auto combined = [&](int64_t row) {
      int64_t p = 0;
      for (int a = 0; a < b.position_axes; ++a) p += (a + 1) * b.positions[static_cast<size_t>(a * tokens + row)];
      return p;
    };

    const int bs = cache.block_size();
    Tensor logits = Tensor::zeros(DType::kF32, {static_cast<int64_t>(b.sequences.size()), kVocab});
    for (size_t s = 0; s < b.sequences.size(); ++s) {
      const backend::SequenceSlice& seq = b.sequences[s];
      for (int64_t i = 0; i < seq.token_count; ++i) {
        const int64_t index = seq.kv_start + i;
        const int32_t block = seq.block_table[static_cast<size_t>(index / bs)];
        const int64_t slot = index % bs;
        for (int layer = 0; layer < 2; ++layer) {
          cache.keys(layer, block)[slot * 2] = static_cast<float>(keys[static_cast<size_t>(seq.token_offset + i)]);
          cache.values(layer, block)[slot * 2] = static_cast<float>(combined(seq.token_offset + i));
        }
      }
      double sum = 0;
      for (int64_t index = 0; index < seq.kv_start + seq.token_count; ++index) {
        const int32_t block = seq.block_table[static_cast<size_t>(index / bs)];
        const int64_t slot = index % bs;
        const int layer = static_cast<int>(index % 2);
        sum += cache.keys(layer, block)[slot * 2] + 3.0 * cache.values(layer, block)[slot * 2];
      }
      const int32_t target = next_token(sum, combined(seq.token_offset + seq.token_count - 1));
      float* row = logits.data_as<float>() + s * kVocab;
      for (int64_t j = 0; j < kVocab; ++j) row[j] = -0.5f * static_cast<float>((j - target + kVocab) % kVocab);
    }
    return logits;
  }

  std::vector<ForwardRecord> records() const {
    std::lock_guard lock(mutex_);
    return records_;
  }
  int encode_calls() const {
    std::lock_guard lock(mutex_);
    return encode_calls_;
  }

  std::function<void(int64_t call)> on_forward;  // set before the engine starts

 private:
  model::ModelInfo info_;
  mutable std::mutex mutex_;
  std::vector<ForwardRecord> records_;
  int encode_calls_ = 0;
};

// The reference: keys and combined positions of the prompt (image rows already replaced), then greedy generation.
// `generated_position(i)` is the combined position of cache index i >= prompt length.
inline std::vector<int32_t> reference_generate(std::vector<double> keys, std::vector<int64_t> positions, int64_t count,
                                               const std::function<int64_t(int64_t)>& generated_position) {
  std::vector<int32_t> out;
  for (int64_t g = 0; g < count; ++g) {
    double sum = 0;
    for (size_t i = 0; i < keys.size(); ++i) sum += keys[i] + 3.0 * static_cast<double>(positions[i]);
    const int32_t t = next_token(sum, positions.back());
    out.push_back(t);
    positions.push_back(generated_position(static_cast<int64_t>(keys.size())));
    keys.push_back(t);
  }
  return out;
}

// For 1-axis models and plain prompts.
inline std::vector<int32_t> reference_text(const std::vector<int32_t>& prompt, int64_t count) {
  std::vector<double> keys(prompt.begin(), prompt.end());
  std::vector<int64_t> positions(prompt.size());
  for (size_t i = 0; i < prompt.size(); ++i) positions[i] = static_cast<int64_t>(i);
  return reference_generate(keys, positions, count, [](int64_t i) { return i; });
}

// ids 0..25 "a".."z", 26..35 digits, 36 " ", 37 "é", 38 "日本", 39 "ab", 40 "the", 41 "\n", 42..59 "x42".."x59";
// added specials 60 <eos>, 61 <pad>, 62 <unused>, 63 <image>.
inline text::Tokenizer make_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < 26; ++i) vocab[std::string(1, static_cast<char>('a' + i))] = i;
  for (int i = 0; i < 10; ++i) vocab[std::string(1, static_cast<char>('0' + i))] = 26 + i;
  vocab[" "] = 36;
  vocab["\xC3\xA9"] = 37;
  vocab["\xE6\x97\xA5\xE6\x9C\xAC"] = 38;
  vocab["ab"] = 39;
  vocab["the"] = 40;
  vocab["\n"] = 41;
  for (int i = 42; i < 60; ++i) vocab["x" + std::to_string(i)] = i;
  nlohmann::json added = nlohmann::json::array();
  const char* specials[] = {"<eos>", "<pad>", "<unused>", "<image>"};
  for (int i = 0; i < 4; ++i) added.push_back({{"id", 60 + i}, {"content", specials[i]}, {"special", true}});
  const nlohmann::json spec = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
                               {"decoder", {{"type", "Fuse"}}},
                               {"added_tokens", added}};
  return text::Tokenizer::from_json(spec.dump(), {}, "engine test tokenizer.json");
}

}  // namespace loom::engine::testing
