#pragma once
// Gemma 4's vision configuration: transformers' Gemma4VisionConfig defaults overlaid with config.json's
// `vision_config`, plus the one text field the multimodal embedder needs (text_config.hidden_size, the width of the
// embeddings handed to the decoder).

#include <cstdint>

#include "backend/ops.h"
#include "model/config.h"

namespace loom::weights {
class Snapshot;
}

namespace loom::model {

struct Gemma4VisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int layers = 16;
  int heads = 12;
  int kv_heads = 12;
  int head_dim = 64;  // independent of hidden_size / heads
  float rms_norm_eps = 1e-6f;
  backend::Activation activation = backend::Activation::kGeluTanh;
  int patch_size = 16;
  int pooling_kernel_size = 3;              // k: k×k patches average into one soft token
  int64_t position_embedding_size = 10240;  // rows of each (x and y) position table
  bool use_clipped_linears = false;         // encoder linears carry input/output clamp bounds
  bool standardize = false;                 // soft tokens become (h − std_bias) · std_scale
  double rope_theta = 100.0;                // 2D RoPE over halves of head_dim (x, then y)
  int64_t text_hidden_size = 2304;          // Gemma4TextConfig.hidden_size default

  int64_t patch_elements() const { return int64_t{3} * patch_size * patch_size; }
};

// Reads `vision` (config.json's vision_config object) with `text_hidden_size` from text_config. Throws
// loom::Error(kInvalidFile) naming the file and field for a malformed value, kUnsupported for a feature loom does not
// implement (attention_bias, a rope_type other than the axial 2D one, an unknown activation).
Gemma4VisionConfig parse_gemma4_vision_config(const JsonFields& vision, int64_t text_hidden_size);

// The same from a snapshot's config.json; kInvalidFile when it has no vision_config.
Gemma4VisionConfig parse_gemma4_vision_config(const weights::Snapshot& snapshot);

}  // namespace loom::model
