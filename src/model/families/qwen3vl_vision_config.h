#pragma once
// The Qwen3-VL vision tower's configuration: transformers' Qwen3VLVisionConfig defaults overlaid with config.json's
// `vision_config`. The tower's layer norms use a fixed eps of 1e-6 and its merger a fixed exact GELU; both are part of
// the model definition, not of the config.

#include <cstdint>
#include <vector>

#include "backend/ops.h"

namespace loom::weights {
class Snapshot;
}

namespace loom::model {

struct Qwen3VLVisionConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int depth = 0;
  int heads = 0;
  int channels = 3;
  int patch_size = 0;
  int temporal_patch_size = 0;
  int spatial_merge_size = 0;
  int64_t out_hidden_size = 0;          // width of the merged features (the text model's hidden size)
  int64_t num_position_embeddings = 0;  // rows of the learned position table
  int grid_per_side = 0;                // int(sqrt(num_position_embeddings)): the table's square grid side
  std::vector<int> deepstack_indexes;   // blocks whose outputs feed a deepstack merger, in merger order
  double rope_theta = 10000.0;
  float layer_norm_eps = 1e-6f;
  backend::Activation activation = backend::Activation::kGeluTanh;  // the blocks' MLP

  int head_dim() const { return static_cast<int>(hidden_size / heads); }
  // Values per row of pixel_values: channels · temporal · patch · patch, in (C, T, py, px) order.
  int64_t patch_values() const { return int64_t{channels} * temporal_patch_size * patch_size * patch_size; }
  int merge_unit() const { return spatial_merge_size * spatial_merge_size; }
  int64_t merged_width() const { return hidden_size * merge_unit(); }  // the merger's input: a 2×2 block concatenated
};

// Reads config.json's `vision_config` (required). Throws loom::Error(kInvalidFile) naming config.json and the field
// for a missing section or a malformed value (non-positive sizes, heads that do not divide hidden_size, deepstack
// indexes outside [0, depth) or repeated, out_hidden_size different from text_config.hidden_size), kUnsupported for
// a rope type other than axial or an unknown activation.
Qwen3VLVisionConfig parse_qwen3vl_vision_config(const weights::Snapshot& snapshot);

}  // namespace loom::model
