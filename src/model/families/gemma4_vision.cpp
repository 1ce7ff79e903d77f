#include "model/families/gemma4_vision.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "model/row_ops.h"

namespace loom::model {
namespace {

constexpr const char* kTowerPrefix = "model.vision_tower.";
constexpr const char* kEmbedderPrefix = "model.embed_vision.";

// One clamp bound of a Gemma4ClippableLinear: a scalar buffer, stored 0-d (transformers) or [1].
float clip_bound(const WeightLoader& loader, const std::string& name) {
  const std::optional<weights::TensorRef> ref = loader.snapshot().find(name);
  const Shape shape = ref && ref->info->shape == Shape{1} ? Shape{1} : Shape{};
  const Tensor value = loader.f32(name, shape);
  return value.data_as<float>()[0];
}

// `<module>.linear.weight` plus, with use_clipped_linears, `<module>.{input,output}_{min,max}`.
Linear clippable(const WeightLoader& loader, const Gemma4VisionConfig& c, const std::string& module, int64_t rows,
                 int64_t cols) {
  Linear layer;
  layer.weight = loader.matrix(module + ".linear", rows, cols);
  if (c.use_clipped_linears) {
    layer.clip.input_min = clip_bound(loader, module + ".input_min");
    layer.clip.input_max = clip_bound(loader, module + ".input_max");
    layer.clip.output_min = clip_bound(loader, module + ".output_min");
    layer.clip.output_max = clip_bound(loader, module + ".output_max");
  }
  return layer;
}

}  // namespace

Gemma4VisionWeights load_gemma4_vision_weights(const WeightLoader& loader, const Gemma4VisionConfig& c,
                                               const std::string& prefix) {
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  const int64_t q_rows = int64_t{c.heads} * c.head_dim, kv_rows = int64_t{c.kv_heads} * c.head_dim;
  Gemma4VisionWeights w;
  w.input_proj = loader.matrix(prefix + "patch_embedder.input_proj", h, c.patch_elements());
  w.position_table = loader.f32(prefix + "patch_embedder.position_embedding_table", {2, c.position_embedding_size, h});
  for (int i = 0; i < c.layers; ++i) {
    const std::string l = prefix + "encoder.layers." + std::to_string(i) + ".";
    Gemma4VisionLayerWeights layer;
    layer.input_layernorm = loader.f32(l + "input_layernorm.weight", {h});
    layer.post_attention_layernorm = loader.f32(l + "post_attention_layernorm.weight", {h});
    layer.pre_feedforward_layernorm = loader.f32(l + "pre_feedforward_layernorm.weight", {h});
    layer.post_feedforward_layernorm = loader.f32(l + "post_feedforward_layernorm.weight", {h});
    layer.attention.q = clippable(loader, c, l + "self_attn.q_proj", q_rows, h);
    layer.attention.k = clippable(loader, c, l + "self_attn.k_proj", kv_rows, h);
    layer.attention.v = clippable(loader, c, l + "self_attn.v_proj", kv_rows, h);
    layer.attention.o = clippable(loader, c, l + "self_attn.o_proj", h, q_rows);
    layer.attention.q_norm = loader.f32(l + "self_attn.q_norm.weight", {c.head_dim});
    layer.attention.k_norm = loader.f32(l + "self_attn.k_norm.weight", {c.head_dim});
    layer.mlp.gate = clippable(loader, c, l + "mlp.gate_proj", inter, h);
    layer.mlp.up = clippable(loader, c, l + "mlp.up_proj", inter, h);
    layer.mlp.down = clippable(loader, c, l + "mlp.down_proj", h, inter);
    w.layers.push_back(std::move(layer));
  }
  if (c.standardize) {
    w.std_bias = loader.f32(prefix + "std_bias", {h});
    w.std_scale = loader.f32(prefix + "std_scale", {h});
  }
  w.embedding_projection = loader.matrix(std::string(kEmbedderPrefix) + "embedding_projection", c.text_hidden_size, h);
  return w;
}

Gemma4PoolPlan plan_gemma4_pooling(std::span<const int64_t> xs, std::span<const int64_t> ys, int kernel,
                                   int64_t output_length, bool has_padding) {
  if (xs.size() != ys.size()) fail(ErrorKind::kInternal, "[gemma4 pooler] {} x but {} y", xs.size(), ys.size());
  // transformers clamps padding to (0, 0) before taking the largest x, so the width never drops below 1.
  int64_t width = 1;
  for (int64_t x : xs) width = std::max(width, x + 1);
  const int64_t per_row = width / kernel;
  std::vector<int64_t> slot_of_patch(xs.size());
  std::vector<uint8_t> occupied(static_cast<size_t>(std::max<int64_t>(output_length, 0)), 0);
  for (size_t i = 0; i < xs.size(); ++i) {
    const int64_t slot = xs[i] / kernel + per_row * (ys[i] / kernel);
    if (slot < 0 || slot >= output_length) {
      fail(ErrorKind::kInvalidRequest,
           "[gemma4 pooler] patch ({}, {}) pools into token {}, outside the {} tokens the patch budget allows", xs[i],
           ys[i], slot, output_length);
    }
    slot_of_patch[i] = slot;
    occupied[static_cast<size_t>(slot)] = 1;
  }
  if (has_padding && output_length > 0) occupied[0] = 1;
  // Occupied slots keep their order: the token index of a slot is the number of occupied slots before it.
  std::vector<int64_t> token_of_slot(occupied.size(), -1);
  Gemma4PoolPlan plan;
  for (size_t s = 0; s < occupied.size(); ++s) {
    if (occupied[s]) token_of_slot[s] = plan.tokens++;
  }
  plan.token_of_patch.reserve(xs.size());
  for (int64_t slot : slot_of_patch) plan.token_of_patch.push_back(token_of_slot[static_cast<size_t>(slot)]);
  return plan;
}

Gemma4VisionTower::Gemma4VisionTower(const weights::Snapshot& snapshot, const WeightLoader& loader,
                                     backend::Backend& backend)
    : backend_(backend), config_(parse_gemma4_vision_config(snapshot)) {
  weights_ = load_gemma4_vision_weights(loader, config_, kTowerPrefix);
  weights_.input_proj = backend_.upload(weights_.input_proj);
  weights_.embedding_projection = backend_.upload(weights_.embedding_projection);
  for (Gemma4VisionLayerWeights& layer : weights_.layers) {
    for (Tensor* t : {&layer.input_layernorm, &layer.post_attention_layernorm, &layer.pre_feedforward_layernorm,
                      &layer.post_feedforward_layernorm}) {
      upload(backend_, *t);
    }
    upload(backend_, layer.attention);
    upload(backend_, layer.mlp);
  }
  rope_ = backend::make_rope_table(
      {.kind = backend::RopeKind::kTwoDHalves, .head_dim = config_.head_dim, .theta = config_.rope_theta});
  attention_ = {
      .heads = config_.heads,
      .kv_heads = config_.kv_heads,
      .head_dim = config_.head_dim,
      .qk_norm = {.eps = config_.rms_norm_eps, .weight = backend::NormWeight::kScale},
      .v_norm = true,
      .rope = &rope_,
      .mask = {.scale = 1.0f, .mask = backend::MaskKind::kFull},
  };
}

Tensor Gemma4VisionTower::encode_soft_tokens(const ImagePixels& image) {
  const Gemma4VisionConfig& c = config_;
  const Tensor& pixels = image.pixel_values;
  const Tensor& positions = image.position_ids;
  const int64_t row = c.patch_elements();
  if (pixels.dtype() != DType::kF32 || pixels.rank() != 2 || pixels.dim(1) != row || pixels.dim(0) < 1) {
    fail(ErrorKind::kInvalidRequest, "[gemma4 vision] pixel_values has shape {} ({}), expected F32 [patches, {}]",
         shape_string(pixels.shape()), dtype_name(pixels.dtype()), row);
  }
  const int64_t patches = pixels.dim(0);
  if (positions.dtype() != DType::kI64 || positions.shape() != Shape{patches, 2}) {
    fail(ErrorKind::kInvalidRequest, "[gemma4 vision] position_ids has shape {} ({}), expected I64 [{}, 2]",
         shape_string(positions.shape()), dtype_name(positions.dtype()), patches);
  }
  const int64_t k2 = int64_t{c.pooling_kernel_size} * c.pooling_kernel_size;
  if (patches % k2 != 0) {
    fail(ErrorKind::kInvalidRequest, "[gemma4 vision] {} patches is not a multiple of pooling_kernel_size² = {}",
         patches, k2);
  }
  const int64_t output_length = patches / k2;

  // Real patches only; padding is (−1, −1).
  const int64_t* pos = positions.data_as<int64_t>();
  std::vector<int64_t> rows, xs, ys;
  for (int64_t i = 0; i < patches; ++i) {
    const int64_t x = pos[2 * i], y = pos[2 * i + 1];
    if (x == -1 && y == -1) continue;
    if (x < 0 || y < 0 || x >= c.position_embedding_size || y >= c.position_embedding_size) {
      fail(ErrorKind::kInvalidRequest,
           "[gemma4 vision] position_ids[{}] = ({}, {}) must be (-1, -1) or within [0, {}) (position_embedding_size)",
           i, x, y, c.position_embedding_size);
    }
    rows.push_back(i);
    xs.push_back(x);
    ys.push_back(y);
  }
  const auto t = static_cast<int64_t>(rows.size());
  if (t == 0) fail(ErrorKind::kInvalidRequest, "[gemma4 vision] the image has only padding patches");
  const Gemma4PoolPlan plan = plan_gemma4_pooling(xs, ys, c.pooling_kernel_size, output_length, t < patches);

  // Patch embedding: 2·(v − 0.5) in fp32, as transformers rescales before input_proj (on the host pixels).
  Tensor host_scaled = Tensor::zeros(DType::kF32, {t, row});
  const float* in = pixels.data_as<float>();
  float* dst = host_scaled.data_as<float>();
  for (int64_t r = 0; r < t; ++r) {
    const float* src = in + rows[static_cast<size_t>(r)] * row;
    for (int64_t j = 0; j < row; ++j) dst[r * row + j] = 2.0f * (src[j] - 0.5f);
  }
  Tensor scaled = scratch_.get(Slot::kPatches, {t, row});
  backend_.copy(host_scaled, scaled);
  const int64_t h = c.hidden_size;
  Tensor x = scratch_.get(Slot::kResidual, {t, h});
  backend_.matmul(scaled, weights_.input_proj, x);
  // Position embeddings x-table[x] + y-table[y], assembled on the host from the host tables.
  Tensor host_positions = Tensor::zeros(DType::kF32, {t, h});
  const float* table_x = weights_.position_table.data_as<float>();
  const float* table_y = table_x + c.position_embedding_size * h;
  float* pe = host_positions.data_as<float>();
  for (int64_t r = 0; r < t; ++r) {
    const float* ex = table_x + xs[static_cast<size_t>(r)] * h;
    const float* ey = table_y + ys[static_cast<size_t>(r)] * h;
    for (int64_t j = 0; j < h; ++j) pe[r * h + j] = ex[j] + ey[j];
  }
  Tensor position_rows = scratch_.get(Slot::kRows, {t, h});
  backend_.copy(host_positions, position_rows);
  backend_.add(x, position_rows, x);

  // RoPE positions, axis-major: x for the first half of each head, y for the second.
  std::vector<int32_t> rope_positions(static_cast<size_t>(2 * t));
  for (int64_t r = 0; r < t; ++r) {
    rope_positions[static_cast<size_t>(r)] = static_cast<int32_t>(xs[static_cast<size_t>(r)]);
    rope_positions[static_cast<size_t>(t + r)] = static_cast<int32_t>(ys[static_cast<size_t>(r)]);
  }
  const backend::SequenceSlice image_rows{.token_offset = 0, .token_count = t};
  const backend::RmsNormSpec norm{.eps = c.rms_norm_eps, .weight = backend::NormWeight::kScale};
  Tensor normed = scratch_.get(Slot::kNormed, {t, h});
  Tensor branch = scratch_.get(Slot::kBranch, {t, h});
  Tensor branch_normed = scratch_.get(Slot::kBranchNormed, {t, h});
  for (const Gemma4VisionLayerWeights& layer : weights_.layers) {
    backend_.rms_norm(x, &layer.input_layernorm, norm, normed);
    dense_attention_block(backend_, layer.attention, attention_, normed, {&image_rows, 1}, scratch_, branch,
                          rope_positions);
    backend_.rms_norm(branch, &layer.post_attention_layernorm, norm, branch_normed);
    backend_.add(x, branch_normed, x);
    backend_.rms_norm(x, &layer.pre_feedforward_layernorm, norm, normed);
    gated_mlp(backend_, layer.mlp, c.activation, normed, scratch_, branch);
    backend_.rms_norm(branch, &layer.post_feedforward_layernorm, norm, branch_normed);
    backend_.add(x, branch_normed, x);
  }

  // Pooler: each token is the sum of its patches / k² (absent padding patches count as zeros), then × sqrt(hidden).
  Tensor pooled = backend_.allocate(DType::kF32, {plan.tokens, h});
  const std::vector<float> inv_k2(static_cast<size_t>(t), 1.0f / static_cast<float>(k2));
  scatter_add_rows(backend_, x, plan.token_of_patch, inv_k2, branch, pooled);
  backend_.scale(pooled, static_cast<float>(std::sqrt(static_cast<double>(h))), pooled);
  if (c.standardize) {
    // (p − bias) · scale as p + (−bias) (exact) then · scale, with rows of −bias and scale assembled on the host.
    Tensor host_bias = Tensor::zeros(DType::kF32, {plan.tokens, h});
    Tensor host_scale = Tensor::zeros(DType::kF32, {plan.tokens, h});
    const float* bias = weights_.std_bias.data_as<float>();
    const float* scale = weights_.std_scale.data_as<float>();
    for (int64_t r = 0; r < plan.tokens; ++r) {
      for (int64_t j = 0; j < h; ++j) {
        host_bias.data_as<float>()[r * h + j] = -bias[j];
        host_scale.data_as<float>()[r * h + j] = scale[j];
      }
    }
    Tensor rows_of = scratch_.get(Slot::kRows, {plan.tokens, h});
    backend_.copy(host_bias, rows_of);
    backend_.add(pooled, rows_of, pooled);
    backend_.copy(host_scale, rows_of);
    backend_.mul(pooled, rows_of, pooled);
  }
  return pooled;
}

Tensor Gemma4VisionTower::encode(const ImagePixels& image) {
  const Tensor soft = encode_soft_tokens(image);
  const int64_t tokens = soft.dim(0);
  if (image.soft_tokens != 0 && image.soft_tokens != tokens) {
    fail(ErrorKind::kInvalidRequest, "[gemma4 vision] image declares {} soft tokens, its patches pool into {}",
         image.soft_tokens, tokens);
  }
  // embed_vision: RMSNorm without a weight, then the projection to the text width.
  Tensor normed = scratch_.get(Slot::kPooled, soft.shape());
  backend_.rms_norm(soft, nullptr, {.eps = config_.rms_norm_eps, .weight = backend::NormWeight::kNone}, normed);
  Tensor embeddings = backend_.allocate(DType::kF32, {tokens, config_.text_hidden_size});
  backend_.matmul(normed, weights_.embedding_projection, embeddings);
  return embeddings;
}

}  // namespace loom::model
