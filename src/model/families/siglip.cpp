#include "model/families/siglip.h"

#include <cmath>

#include "core/error.h"

namespace loom::model {
namespace {

Linear biased(const WeightLoader& loader, const std::string& module, int64_t rows, int64_t cols) {
  return {loader.matrix(module, rows, cols), loader.f32(module + ".bias", {rows})};
}

}  // namespace

SiglipWeights load_siglip_weights(const WeightLoader& loader, const VisionConfig& c, const std::string& prefix) {
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  const int64_t patches = c.patches_per_side() * c.patches_per_side();
  SiglipWeights w;
  w.patch_embedding = loader.patch_embedding(prefix + "embeddings.patch_embedding.weight", h, c.channels, c.patch_size);
  w.patch_bias = loader.f32(prefix + "embeddings.patch_embedding.bias", {h});
  w.position_embedding = loader.f32(prefix + "embeddings.position_embedding.weight", {patches, h});
  for (int i = 0; i < c.layers; ++i) {
    const std::string l = prefix + "encoder.layers." + std::to_string(i) + ".";
    SiglipLayerWeights layer;
    layer.layer_norm1_weight = loader.f32(l + "layer_norm1.weight", {h});
    layer.layer_norm1_bias = loader.f32(l + "layer_norm1.bias", {h});
    layer.layer_norm2_weight = loader.f32(l + "layer_norm2.weight", {h});
    layer.layer_norm2_bias = loader.f32(l + "layer_norm2.bias", {h});
    layer.attention.q = biased(loader, l + "self_attn.q_proj", h, h);
    layer.attention.k = biased(loader, l + "self_attn.k_proj", h, h);
    layer.attention.v = biased(loader, l + "self_attn.v_proj", h, h);
    layer.attention.o = biased(loader, l + "self_attn.out_proj", h, h);
    layer.mlp.fc1 = biased(loader, l + "mlp.fc1", inter, h);
    layer.mlp.fc2 = biased(loader, l + "mlp.fc2", h, inter);
    w.layers.push_back(std::move(layer));
  }
  w.post_layernorm_weight = loader.f32(prefix + "post_layernorm.weight", {h});
  w.post_layernorm_bias = loader.f32(prefix + "post_layernorm.bias", {h});
  return w;
}

void upload(backend::Backend& backend, SiglipWeights& w) {
  w.patch_embedding = backend.upload(w.patch_embedding);
  for (Tensor* t : {&w.patch_bias, &w.position_embedding, &w.post_layernorm_weight, &w.post_layernorm_bias}) {
    upload(backend, *t);
  }
  for (SiglipLayerWeights& layer : w.layers) {
    for (Tensor* t :
         {&layer.layer_norm1_weight, &layer.layer_norm1_bias, &layer.layer_norm2_weight, &layer.layer_norm2_bias}) {
      upload(backend, *t);
    }
    upload(backend, layer.attention);
    upload(backend, layer.mlp);
  }
}

SiglipTower::SiglipTower(const VisionConfig& config, SiglipWeights weights)
    : config_(config), weights_(std::move(weights)) {
  attention_.heads = config.heads;
  attention_.kv_heads = config.heads;
  attention_.head_dim = config.head_dim();
  attention_.mask = {.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(config.head_dim()))),
                     .mask = backend::MaskKind::kFull};
}

Tensor SiglipTower::encode(backend::Backend& backend, const Tensor& pixels, Scratch& scratch) const {
  const VisionConfig& c = config_;
  if (pixels.dtype() != DType::kF32 || pixels.rank() != 4 || pixels.dim(0) < 1 || pixels.dim(1) != c.channels ||
      pixels.dim(2) != c.image_size || pixels.dim(3) != c.image_size) {
    fail(ErrorKind::kInvalidRequest, "[siglip] pixel values have shape {} ({}), expected F32 [images, {}, {}, {}]",
         shape_string(pixels.shape()), dtype_name(pixels.dtype()), c.channels, c.image_size, c.image_size);
  }
  const int64_t images = pixels.dim(0);
  const int64_t per_image = c.patches_per_side() * c.patches_per_side();
  const int64_t rows = images * per_image;
  const int64_t patch_elems = int64_t{c.channels} * c.patch_size * c.patch_size;

  // Patch embedding: Conv2d(kernel = stride = patch) = extracted patches · W[hidden, C·p·p]ᵀ + bias.
  Tensor patches = scratch.get(Slot::kPatches, {rows, patch_elems});
  const Tensor device_pixels =
      pixels.device() == backend.device() ? pixels : backend.upload(pixels);  // the CPU backend copies nothing
  for (int64_t i = 0; i < images; ++i) {
    const Tensor image = row_block(device_pixels, i, 1).reshaped({c.channels, c.image_size, c.image_size});
    Tensor out = row_block(patches, i * per_image, per_image);
    backend.extract_patches(image, c.patch_size, out);
  }
  Tensor x = scratch.get(Slot::kResidual, {rows, c.hidden_size});
  backend.matmul(patches, weights_.patch_embedding, x);
  backend.add_bias(x, weights_.patch_bias);
  for (int64_t i = 0; i < images; ++i) {
    Tensor slice = row_block(x, i * per_image, per_image);
    backend.add(slice, weights_.position_embedding, slice);
  }

  std::vector<backend::SequenceSlice> sequences;
  for (int64_t i = 0; i < images; ++i) sequences.push_back({.token_offset = i * per_image, .token_count = per_image});
  Tensor normed = scratch.get(Slot::kNormed, {rows, c.hidden_size});
  Tensor branch = scratch.get(Slot::kBranch, {rows, c.hidden_size});
  for (const SiglipLayerWeights& layer : weights_.layers) {
    backend.layer_norm(x, layer.layer_norm1_weight, layer.layer_norm1_bias, c.layer_norm_eps, normed);
    dense_attention_block(backend, layer.attention, attention_, normed, sequences, scratch, branch);
    backend.add(x, branch, x);
    backend.layer_norm(x, layer.layer_norm2_weight, layer.layer_norm2_bias, c.layer_norm_eps, normed);
    mlp(backend, layer.mlp, c.activation, normed, scratch, branch);
    backend.add(x, branch, x);
  }
  backend.layer_norm(x, weights_.post_layernorm_weight, weights_.post_layernorm_bias, c.layer_norm_eps, normed);
  return normed;
}

}  // namespace loom::model
