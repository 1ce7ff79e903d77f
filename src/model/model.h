#pragma once
// The contract between the engine and a model family. A family knows its own math (embedding, layers, vision tower,
// how image features enter the sequence) and nothing of scheduling: the engine builds each step's ragged Batch,
// owns the KV cache and decides which rows need logits.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "backend/batch.h"
#include "backend/kv_cache.h"
#include "core/tensor.h"

namespace loom::model {

// What the engine needs to know about a loaded model.
struct ModelInfo {
  std::string architecture;  // config.json architectures[0], e.g. "Gemma3ForConditionalGeneration"
  int64_t vocab_size = 0;    // rows of the logits
  int64_t hidden_size = 0;   // width of the decoder's hidden states
  // Columns of the rows encode_image returns and forward() takes back in ImageRows; 0: hidden_size. Wider when a
  // family carries more than one feature per soft token (Qwen3-VL: the merger output and its DeepStack features).
  int64_t image_embedding_width = 0;
  int64_t context_length = 0;             // max_position_embeddings of the text model
  int position_axes = 1;                  // rows of Batch::positions (3 for M-RoPE)
  std::vector<backend::KvLayerShape> kv;  // one entry per layer that stores K/V, in cache-layer order
  std::vector<int32_t> stop_ids;          // end-of-generation ids (generation_config.json, config)
  int32_t image_token_id = -1;            // the soft-token placeholder id; -1 for text-only models
  // Image soft tokens attend to each other bidirectionally at prefill (Gemma 3; Gemma 4 26B/31B).
  bool bidirectional_images = false;

  int64_t image_width() const { return image_embedding_width > 0 ? image_embedding_width : hidden_size; }
};

// One image after the family's preprocessor (src/vision/), in the layout its vision tower takes.
struct ImagePixels {
  Tensor pixel_values;  // F32; Gemma 3 [1 + crops, 3, H, W], Gemma 4 [patches, 768], Qwen3-VL [rows, 1536]
  Tensor position_ids;  // I64 patch positions where the family needs them (Gemma 4 (x, y) with −1 padding)
  int64_t grid_thw[3] = {1, 0, 0};  // Qwen3-VL patch grid
  int64_t soft_tokens = 0;          // embeddings the tower produces for this image
};

// Image embeddings to put into a step's rows: `embeddings` [rows, ModelInfo::image_width()] replace the token
// embeddings of packed rows [row_begin, row_begin + rows) (rows whose id is the image token id).
struct ImageRows {
  int64_t row_begin = 0;
  Tensor embeddings;
};

struct StepInputs {
  const backend::Batch* batch = nullptr;
  std::span<const ImageRows> images{};
  // false: logits for the last row of each sequence only ([sequences, vocab]); true: for every row ([tokens, vocab]).
  bool all_logits = false;
};

// How a model's forward steps ran (model/step_runner.h): op by op, or recorded into a graph and replayed.
struct StepCounts {
  int64_t eager = 0;     // run op by op
  int64_t recorded = 0;  // recorded, then run from the new graph
  int64_t replayed = 0;  // run from an earlier graph
  int64_t refused = 0;   // recordings that failed (that step shape runs op by op from then on)
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;

  // The backend the model runs on: the KV cache handed to forward() must be allocated through it (KvCache's backend
  // argument). nullptr: host memory (models that need no backend, such as test doubles).
  virtual backend::Backend* backend() { return nullptr; }

  // Runs the vision tower and projector on one image: F32 [soft_tokens, ModelInfo::image_width()] in the backend's
  // memory; pixel_values are in host memory.
  virtual Tensor encode_image(const ImagePixels& image) = 0;

  // One step: appends the batch's keys and values to `cache` and returns F32 logits in host memory (see
  // StepInputs::all_logits): the only activations that leave the backend. Image rows may be in host or backend memory.
  virtual Tensor forward(const StepInputs& step, backend::KvCache& cache) = 0;

  // Since load; all zero for models that do not go through a StepRunner.
  virtual StepCounts step_counts() const { return {}; }
};

// Throws kInternal ("[family] …") unless `cache` has exactly the layers `info.kv` describes: the engine sizes the cache
// from ModelInfo, so a mismatch is a programming error, caught before any layer writes into the wrong shape.
void check_cache_layout(const backend::KvCache& cache, const ModelInfo& info, std::string_view family);

}  // namespace loom::model
