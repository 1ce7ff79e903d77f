#pragma once
// The SigLIP vision encoder (Gemma 3's vision tower): a stride = kernel patch convolution run as a matmul over the
// extracted patches, a learned position embedding, pre-LayerNorm encoder layers with biased q/k/v/out projections
// and a plain MLP, and a final post_layernorm. Attention is bidirectional within an image, scale head_dim^-0.5.

#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/layers.h"
#include "model/weight_loader.h"

namespace loom::model {

struct SiglipLayerWeights {
  Tensor layer_norm1_weight, layer_norm1_bias;  // F32 [hidden]
  Tensor layer_norm2_weight, layer_norm2_bias;  // F32 [hidden]
  AttentionWeights attention;                   // q/k/v/out [hidden, hidden], biases F32 [hidden]
  MlpWeights mlp;                               // fc1 [intermediate, hidden] + [intermediate]; fc2 [hidden, inter…]
};

struct SiglipWeights {
  weights::Weight patch_embedding;  // [hidden, channels·patch·patch] in (channel, py, px) order
  Tensor patch_bias;                // F32 [hidden]
  Tensor position_embedding;        // F32 [patches, hidden]
  std::vector<SiglipLayerWeights> layers;
  Tensor post_layernorm_weight, post_layernorm_bias;  // F32 [hidden]
};

// `prefix` is the canonical prefix of the tower ("model.vision_tower.vision_model." or "model.vision_tower.").
SiglipWeights load_siglip_weights(const WeightLoader& loader, const VisionConfig& config, const std::string& prefix);
// Moves every tensor of the tower into the backend's memory.
void upload(backend::Backend& backend, SiglipWeights& w);

class SiglipTower {
 public:
  SiglipTower(const VisionConfig& config, SiglipWeights weights);

  // pixels F32 [images, channels, image_size, image_size] (host or backend memory) → the last hidden state after
  // post_layernorm, [images·patches, hidden], patches row-major per image. The result is a view of `scratch` slot
  // kNormed. The weights must be in the backend's memory (upload()).
  Tensor encode(backend::Backend& backend, const Tensor& pixels, Scratch& scratch) const;

  const VisionConfig& config() const { return config_; }

 private:
  VisionConfig config_;
  SiglipWeights weights_;
  AttentionParams attention_;
};

}  // namespace loom::model
