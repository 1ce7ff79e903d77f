#pragma once
// The Gemma 4 vision tower and its multimodal embedder (transformers' Gemma4VisionModel + Gemma4MultimodalEmbedder):
// pre-patchified pixels with (x, y) patch positions in, the embeddings that replace the image soft tokens out.
//
//   patches ·2−1 → input_proj → + x-table[x] + y-table[y]
//   encoder layers: Gemma sandwich RMSNorms around attention (q/k norms with weights, v norm without, 2D RoPE θ 100
//   over the halves of head_dim, scale 1, bidirectional among the image's real patches) and a gated MLP; every
//   encoder linear may clamp its input and output (use_clipped_linears)
//   pooler: k×k average by position, ×sqrt(hidden), optional standardize
//   embedder: RMSNorm without weight, then Linear(vision hidden → text hidden)
//
// Memory: the matrices and norms are uploaded to the backend at load; the position tables and the standardize vectors
// stay on the host, where each image's rows are assembled from them (and from the host pixels) and copied in. The
// pooler accumulates in the backend's memory.
//
// Padding patches (position (−1, −1)) are dropped before the encoder: transformers masks them out as keys and zeroes
// them before pooling, so they never reach a real patch's output.

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/rope_table.h"
#include "core/tensor.h"
#include "model/families/gemma4_vision_config.h"
#include "model/layers.h"
#include "model/model.h"
#include "model/weight_loader.h"
#include "weights/snapshot.h"

namespace loom::model {

struct Gemma4VisionLayerWeights {
  Tensor input_layernorm, post_attention_layernorm;              // F32 [hidden]
  Tensor pre_feedforward_layernorm, post_feedforward_layernorm;  // F32 [hidden]
  AttentionWeights attention;  // q [heads·head_dim, hidden], k/v [kv_heads·head_dim, hidden], o; q/k norms [head_dim]
  GatedMlpWeights mlp;         // gate/up [intermediate, hidden], down [hidden, intermediate]
};

struct Gemma4VisionWeights {
  weights::Weight input_proj;  // [hidden, 3·patch²], columns in the processor's (py, px, c) order
  Tensor position_table;       // F32 [2, position_embedding_size, hidden]: x table, then y table (host memory)
  std::vector<Gemma4VisionLayerWeights> layers;
  Tensor std_bias, std_scale;            // F32 [hidden] when standardize (host memory)
  weights::Weight embedding_projection;  // [text hidden, hidden]
};

// `prefix` is the canonical tower prefix ("model.vision_tower."); the embedder is read from "model.embed_vision.".
Gemma4VisionWeights load_gemma4_vision_weights(const WeightLoader& loader, const Gemma4VisionConfig& config,
                                               const std::string& prefix);

// How the pooler assigns patches to output tokens, exactly as transformers computes it: patch (x, y) lands in slot
// floor(x/k) + floor(W/k)·floor(y/k), where W = 1 + the largest x of the image (padding counts as x = 0), and slots
// range over [0, output_length). Each occupied slot becomes one output token, in slot order (row-major over the pooled
// grid); a padding patch occupies slot 0 (contributing zeros), as transformers' clamp to (0, 0) makes it.
struct Gemma4PoolPlan {
  std::vector<int64_t> token_of_patch;  // per real patch, its output token
  int64_t tokens = 0;
};

// xs, ys: positions of the real patches; `has_padding`: the image also had padding patches. Throws kInvalidRequest
// when a slot falls outside [0, output_length).
Gemma4PoolPlan plan_gemma4_pooling(std::span<const int64_t> xs, std::span<const int64_t> ys, int kernel,
                                   int64_t output_length, bool has_padding);

class Gemma4VisionTower {
 public:
  Gemma4VisionTower(const weights::Snapshot& snapshot, const WeightLoader& loader, backend::Backend& backend);

  // image.pixel_values F32 [patches, 3·patch²] (values in [0, 1]), image.position_ids I64 [patches, 2] (x, y; −1 =
  // padding); patches must be a multiple of pooling_kernel_size². Returns F32 [image.soft_tokens, text hidden_size]
  // (image.soft_tokens 0: whatever the pooler yields). Bad input throws kInvalidRequest naming the field.
  Tensor encode(const ImagePixels& image);

  // The pooled, scaled (and standardized) soft tokens before the embedder, F32 [tokens, hidden]: encode() without
  // the final norm and projection (what transformers' Gemma4VisionModel returns).
  Tensor encode_soft_tokens(const ImagePixels& image);

  const Gemma4VisionConfig& config() const { return config_; }

 private:
  backend::Backend& backend_;
  Gemma4VisionConfig config_;
  Gemma4VisionWeights weights_;
  backend::RopeTable rope_;
  AttentionParams attention_;
  Scratch scratch_{&backend_};
};

}  // namespace loom::model
