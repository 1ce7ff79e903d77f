#pragma once
// The Qwen3-VL vision tower: a Conv3d patch embedding (kernel = stride = (T, p, p)) run as a matmul over the
// processor's patch rows, a learned square position table bilinearly resampled (align-corners) to each image's grid,
// pre-LayerNorm blocks with a fused biased qkv, 2D rotary embeddings (row and column frequencies concatenated) and a
// plain MLP, attention bidirectional within each frame and never across, then the patch merger (LayerNorm per patch,
// 2×2 block concatenated, fc1, exact GELU, fc2) and the DeepStack mergers (concatenate first, then LayerNorm over the
// block) on the outputs of the configured blocks.
//
// Rows are in the processor's merge-block order: block row, block column, row in block, column in block. Every
// per-patch input the tower builds (position embedding, RoPE positions) follows that order, and the merger takes
// merge_unit consecutive rows as one token.

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/rope_table.h"
#include "core/tensor.h"
#include "model/families/qwen3vl_vision_config.h"
#include "model/layers.h"
#include "model/model.h"
#include "model/weight_loader.h"
#include "weights/snapshot.h"

namespace loom::model {

struct Qwen3VLImageFeatures {
  Tensor embeddings;              // F32 [soft_tokens, text hidden]: the merger's output, one row per image token
  std::vector<Tensor> deepstack;  // one F32 [soft_tokens, text hidden] per deepstack merger, in layer order
};

struct Qwen3VLVisionBlockWeights {
  Tensor norm1_weight, norm1_bias;  // F32 [hidden]
  Tensor norm2_weight, norm2_bias;  // F32 [hidden]
  AttentionWeights attention;       // the fused qkv split into q, k, v at load; biases F32
  MlpWeights mlp;                   // linear_fc1, linear_fc2 with biases
};

struct Qwen3VLMergerWeights {
  bool norm_after_concat = false;  // use_postshuffle_norm: the DeepStack mergers normalise the concatenated block
  Tensor norm_weight, norm_bias;   // F32 [hidden], or [hidden · merge_unit] when norm_after_concat
  Linear fc1;                      // [hidden · merge_unit, hidden · merge_unit]
  Linear fc2;                      // [out_hidden, hidden · merge_unit]
};

struct Qwen3VLVisionWeights {
  weights::Weight patch_embedding;  // F32 [hidden, C·T·p·p] in (C, T, py, px) order
  Tensor patch_bias;                // F32 [hidden]
  Tensor position_table;            // F32 [num_position_embeddings, hidden], host memory (resampled per image)
  std::vector<Qwen3VLVisionBlockWeights> blocks;
  Qwen3VLMergerWeights merger;
  std::vector<Qwen3VLMergerWeights> deepstack_mergers;  // in deepstack_visual_indexes order
};

// Loads the tower's tensors (canonical prefix "model.visual."). Conv3d weights are read in PyTorch
// [hidden, C, T, p, p] or MLX [hidden, T, p, p, C] layout. Errors name the file, the tensor and the shapes.
Qwen3VLVisionWeights load_qwen3vl_vision_weights(const WeightLoader& loader, const Qwen3VLVisionConfig& config);

// The (row, column) patch coordinates of each row of a t×h×w grid in merge-block order, axis-major [2, t·h·w]:
// entries [0, n) are rows, [n, 2n) columns; frames repeat the same coordinates. These are the 2D RoPE positions.
std::vector<int32_t> qwen3vl_patch_positions(int64_t t, int64_t h, int64_t w, int merge);

// The learned position table [rows ≥ side², hidden] (a side×side grid, row-major) resampled to an h×w grid with
// align-corners bilinear weights (source coordinate i·(side−1)/max(h−1, 1), taps floor and floor+1 clamped to the
// grid), one row per patch in merge-block order, repeated for each of t frames: F32 [t·h·w, hidden].
Tensor qwen3vl_position_embedding(const Tensor& table, int side, int64_t t, int64_t h, int64_t w, int merge);

class Qwen3VLVisionTower {
 public:
  // Reads config.json's vision_config from `snapshot` and the weights through `loader` (which must read the same
  // snapshot). `backend` runs every encode and must outlive the tower.
  Qwen3VLVisionTower(const weights::Snapshot& snapshot, const WeightLoader& loader, backend::Backend& backend);

  // image.pixel_values F32 [t·h·w, C·T·p·p] as the processor lays them out, image.grid_thw (t, h, w) with h and w
  // multiples of spatial_merge_size; image.soft_tokens, when set, must equal t·h·w / merge_unit. Each frame attends
  // only to itself. Throws loom::Error(kInvalidRequest) naming the mismatch. The pixels and the resampled position
  // embeddings are uploaded per image; the features are in the backend's memory.
  Qwen3VLImageFeatures encode(const ImagePixels& image);

  const Qwen3VLVisionConfig& config() const { return config_; }

 private:
  // x [n, hidden] (n a multiple of merge_unit) → F32 [n / merge_unit, out_hidden], freshly allocated.
  Tensor merge(const Qwen3VLMergerWeights& merger, const Tensor& x);

  Qwen3VLVisionConfig config_;
  Qwen3VLVisionWeights weights_;
  backend::Backend& backend_;
  backend::RopeTable rope_;
  AttentionParams attention_;
  Scratch scratch_{&backend_};
};

}  // namespace loom::model
