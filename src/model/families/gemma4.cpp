#include "model/families/gemma4.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/families/gemma3.h"
#include "model/row_ops.h"
#include "model/tensor_parallel.h"
#include "model/weight_loader.h"

namespace loom::model {
namespace {

using backend::Batch;
using backend::KvCache;

Gemma4MoeWeights load_moe(const WeightLoader& loader, const Gemma4TextConfig& c, const std::string& l,
                          const Sharding& sharding) {
  const int64_t h = c.base.hidden_size, inter = c.moe_intermediate_size;
  Gemma4MoeWeights m;
  m.router = loader.matrix(l + "router.proj", c.experts, h);
  // router.scale · hidden^-0.5 becomes the weight of the router's RMSNorm.
  m.router_scale = loader.f32(l + "router.scale", {h});
  const auto root = static_cast<float>(std::pow(static_cast<double>(h), -0.5));
  for (float& v : m.router_scale.span<float>()) v *= root;
  m.per_expert_scale = loader.f32(l + "router.per_expert_scale", {c.experts});
  const std::vector<weights::Weight> gate_up =
      loader.stacked_matrices(l + "experts.gate_up_proj", c.experts, 2 * inter, h);
  std::vector<weights::Weight> down = loader.stacked_matrices(l + "experts.down_proj", c.experts, h, inter);
  for (int e = 0; e < c.experts; ++e) {
    GatedMlpWeights expert;
    expert.gate.weight = weight_rows(gate_up[static_cast<size_t>(e)], 0, inter, l + "experts.gate_up_proj");
    expert.up.weight = weight_rows(gate_up[static_cast<size_t>(e)], inter, inter, l + "experts.gate_up_proj");
    expert.down.weight = std::move(down[static_cast<size_t>(e)]);
    if (sharding.active()) {
      shard_expert(expert, even_shard(sharding, inter, "[gemma4] " + l + "moe_intermediate_size"),
                   l + "experts." + std::to_string(e));
    }
    m.experts.push_back(std::move(expert));
  }
  m.pre_feedforward_norm_2 = loader.f32(l + "pre_feedforward_layernorm_2.weight", {h});
  m.post_feedforward_norm_1 = loader.f32(l + "post_feedforward_layernorm_1.weight", {h});
  m.post_feedforward_norm_2 = loader.f32(l + "post_feedforward_layernorm_2.weight", {h});
  return m;
}

// The text decoder's manifest. `prefix` is "model.language_model." (multimodal) or "model." (text-only).
Gemma4TextWeights load_text_weights(const WeightLoader& loader, const Gemma4TextConfig& c,
                                    const std::vector<Gemma4LayerPlan>& plans, const std::vector<HeadShard>& heads,
                                    const std::string& prefix, const Sharding& sharding) {
  const TextConfig& t = c.base;
  const int64_t h = t.hidden_size, ple = c.ple_dim, all_ple = int64_t{t.layers} * c.ple_dim;
  Gemma4TextWeights w;
  w.embed = load_vocab_table(loader, sharding, prefix + "embed_tokens", t.vocab_size, h);
  if (ple > 0) {
    w.embed_per_layer = loader.matrix(prefix + "embed_tokens_per_layer", c.ple_vocab, all_ple);
    w.per_layer_model_projection = loader.matrix(prefix + "per_layer_model_projection", all_ple, h);
    w.per_layer_projection_norm = loader.f32(prefix + "per_layer_projection_norm.weight", {ple});
  }
  for (int i = 0; i < t.layers; ++i) {
    const Gemma4LayerPlan& p = plans[static_cast<size_t>(i)];
    const std::string l = prefix + "layers." + std::to_string(i) + ".";
    const int64_t d = p.head_dim, q_rows = int64_t{t.heads} * d, kv_rows = int64_t{p.kv_heads} * d;
    const HeadShard& hs = heads[static_cast<size_t>(i)];
    const ShardRange q_part{hs.head_begin * d, hs.heads * d}, kv_part{hs.kv_begin * d, hs.kv_heads * d};
    const ShardRange mlp_part = even_shard(sharding, p.intermediate_size, "[gemma4] " + l + "mlp intermediate size");
    Gemma4DecoderLayerWeights layer;
    layer.input_norm = loader.f32(l + "input_layernorm.weight", {h});
    layer.post_attention_norm = loader.f32(l + "post_attention_layernorm.weight", {h});
    layer.pre_feedforward_norm = loader.f32(l + "pre_feedforward_layernorm.weight", {h});
    layer.post_feedforward_norm = loader.f32(l + "post_feedforward_layernorm.weight", {h});
    layer.attention.q = load_column_parallel(loader, l + "self_attn.q_proj", q_rows, h, q_part);
    layer.attention.o = load_row_parallel(loader, l + "self_attn.o_proj", h, q_rows, q_part);
    layer.attention.q_norm = loader.f32(l + "self_attn.q_norm.weight", {d});
    if (p.stores_kv) {  // shared layers have no k/v projections (a snapshot may still carry unused ones)
      layer.attention.k = load_column_parallel(loader, l + "self_attn.k_proj", kv_rows, h, kv_part);
      if (!p.k_eq_v) layer.attention.v = load_column_parallel(loader, l + "self_attn.v_proj", kv_rows, h, kv_part);
      layer.attention.k_norm = loader.f32(l + "self_attn.k_norm.weight", {d});
    }
    layer.mlp.gate = load_column_parallel(loader, l + "mlp.gate_proj", p.intermediate_size, h, mlp_part);
    layer.mlp.up = load_column_parallel(loader, l + "mlp.up_proj", p.intermediate_size, h, mlp_part);
    layer.mlp.down = load_row_parallel(loader, l + "mlp.down_proj", h, p.intermediate_size, mlp_part);
    if (c.moe) layer.moe = load_moe(loader, c, l, sharding);
    if (ple > 0) {
      layer.per_layer_input_gate.weight = loader.matrix(l + "per_layer_input_gate", ple, h);
      layer.per_layer_projection.weight = loader.matrix(l + "per_layer_projection", h, ple);
      layer.post_per_layer_input_norm = loader.f32(l + "post_per_layer_input_norm.weight", {h});
    }
    if (loader.has(l + "layer_scalar")) layer.layer_scalar = loader.f32(l + "layer_scalar", {1}).data_as<float>()[0];
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = loader.f32(prefix + "norm.weight", {h});
  w.lm_head = loader.has("lm_head.weight") ? load_vocab_table(loader, sharding, "lm_head", t.vocab_size, h) : w.embed;
  return w;
}

}  // namespace

Gemma4Model::Gemma4Model(const weights::Snapshot& snapshot, backend::Backend& backend, const Sharding& sharding)
    : backend_(backend), sharding_(sharding), config_(parse_gemma4_config(snapshot)) {
  const WeightLoader loader(snapshot);
  const Gemma4TextConfig& c = config_.text;
  const TextConfig& t = c.base;
  plans_ = plan_gemma4_layers(c);
  multimodal_ = snapshot.config().contains("text_config");
  const std::string text_prefix = loader.choose_prefix({"model.language_model.", "model."}, "embed_tokens.weight");
  std::vector<HeadShard> heads;
  for (size_t i = 0; i < plans_.size(); ++i) {
    heads.push_back(shard_heads(sharding_, t.heads, plans_[i].kv_heads, fmt::format("[gemma4] layer {}", i)));
  }
  text_ = load_text_weights(loader, c, plans_, heads, text_prefix, sharding_);
  embed_scale_ = gemma3_embedding_scale(text_.embed, t.hidden_size);
  if (c.ple_dim > 0) ple_scale_ = gemma3_embedding_scale(text_.embed_per_layer, c.ple_dim);
  upload_text_weights();

  rope_full_ = backend::make_rope_table(t.rope_full);
  rope_sliding_ = backend::make_rope_table(t.rope_sliding);
  for (size_t i = 0; i < plans_.size(); ++i) {
    const Gemma4LayerPlan& p = plans_[i];
    const bool sliding = p.kind == LayerKind::kSlidingAttention;
    // Image runs attend bidirectionally only on sliding layers, and only inside the window (26B/31B); full layers
    // stay causal.
    const backend::SpanMode spans =
        c.bidirectional_vision && sliding ? backend::SpanMode::kWithinWindow : backend::SpanMode::kIgnore;
    attention_.push_back({
        .heads = heads[i].heads,
        .kv_heads = heads[i].kv_heads,
        .head_dim = p.head_dim,
        .qk_norm = {.eps = t.rms_norm_eps, .weight = t.norm_weight},
        .v_norm = true,
        .rope = sliding ? &rope_sliding_ : &rope_full_,
        .mask = {.scale = t.attention_scale,
                 .mask = sliding ? backend::MaskKind::kSliding : backend::MaskKind::kCausal,
                 .window = sliding ? t.sliding_window : 0,
                 .logit_softcap = 0,
                 .spans = spans},
        .shared_kv = !p.stores_kv,
        .reduce = reducer(sharding_),
    });
  }
  if (config_.has_vision) vision_ = make_gemma4_image_encoder(snapshot, loader, backend);

  info_.architecture = config_.architecture;
  info_.vocab_size = t.vocab_size;
  info_.hidden_size = t.hidden_size;
  info_.context_length = t.max_position_embeddings;
  info_.position_axes = 1;
  info_.kv = gemma4_kv_layers(plans_);
  // A KV-shared layer reads its source's cache layer: same kv_heads, same shard of them.
  for (size_t i = 0, k = 0; i < plans_.size(); ++i) {
    if (plans_[i].stores_kv) info_.kv[k++].kv_heads = heads[i].kv_heads;
  }
  info_.stop_ids = config_.stop_ids;
  info_.image_token_id = config_.has_vision ? config_.image_token_id : -1;
  info_.bidirectional_images = config_.has_vision && c.bidirectional_vision;
}

void Gemma4Model::upload_text_weights() {
  // A tied lm_head shares the embedding's storage on the host; keep it shared in the backend's memory too.
  const bool tied = text_.lm_head.values.data() == text_.embed.values.data();
  text_.embed = backend_.upload(text_.embed);
  text_.lm_head = tied ? text_.embed : backend_.upload(text_.lm_head);
  if (config_.text.ple_dim > 0) {
    text_.embed_per_layer = backend_.upload(text_.embed_per_layer);
    text_.per_layer_model_projection = backend_.upload(text_.per_layer_model_projection);
    upload(backend_, text_.per_layer_projection_norm);
  }
  for (Gemma4DecoderLayerWeights& layer : text_.layers) {
    for (Tensor* t : {&layer.input_norm, &layer.post_attention_norm, &layer.pre_feedforward_norm,
                      &layer.post_feedforward_norm, &layer.post_per_layer_input_norm}) {
      upload(backend_, *t);
    }
    upload(backend_, layer.attention);
    upload(backend_, layer.mlp);
    if (layer.moe) upload(backend_, *layer.moe);
    if (config_.text.ple_dim > 0) {
      upload(backend_, layer.per_layer_input_gate);
      upload(backend_, layer.per_layer_projection);
    }
  }
  upload(backend_, text_.final_norm);
}

Tensor Gemma4Model::encode_image(const ImagePixels& image) {
  if (!config_.has_vision)
    fail(ErrorKind::kUnsupported, "{} is a text-only model: it takes no images", info_.architecture);
  if (!vision_) fail(ErrorKind::kUnsupported, "[gemma4] this build has no Gemma 4 vision tower");
  Tensor embeddings = vision_->encode(image);
  if (embeddings.rank() != 2 || embeddings.dim(1) != config_.text.base.hidden_size ||
      (image.soft_tokens != 0 && embeddings.dim(0) != image.soft_tokens)) {
    fail(ErrorKind::kInvalidRequest, "[gemma4] image declares {} soft tokens, the vision tower made {}",
         image.soft_tokens, shape_string(embeddings.shape()));
  }
  return embeddings;
}

void Gemma4Model::scatter_images(const StepInputs& step, Tensor& x) const {
  const Batch& batch = *step.batch;
  const int64_t hidden = config_.text.base.hidden_size;
  for (const ImageRows& rows : step.images) {
    const Tensor& e = rows.embeddings;
    if (e.dtype() != DType::kF32 || e.rank() != 2 || e.dim(1) != hidden || rows.row_begin < 0 ||
        rows.row_begin + e.dim(0) > batch.tokens()) {
      fail(ErrorKind::kInternal, "[gemma4] image rows [{}, +{}) of width {} do not fit a step of {} tokens × {}",
           rows.row_begin, e.rank() == 2 ? e.dim(0) : -1, e.rank() == 2 ? e.dim(1) : -1, batch.tokens(), hidden);
    }
    for (int64_t r = 0; r < e.dim(0); ++r) {
      const int32_t id = batch.token_ids[static_cast<size_t>(rows.row_begin + r)];
      if (id != config_.image_token_id) {
        fail(ErrorKind::kInternal, "[gemma4] image embedding row {} lands on token id {}, not the image token {}",
             rows.row_begin + r, id, config_.image_token_id);
      }
    }
    copy_rows(backend_, e, 0, x, rows.row_begin, e.dim(0));
  }
}

Tensor Gemma4Model::per_layer_inputs(const Tensor& x) {
  const Gemma4TextConfig& c = config_.text;
  const int64_t tokens = x.dim(0), all = int64_t{c.base.layers} * c.ple_dim;
  // Context part: the merged embeddings projected, scaled, normalised per layer slice.
  Tensor combined = scratch_.get(Slot::kPerLayerInputs, {tokens, all});
  backend_.matmul(x, text_.per_layer_model_projection, combined);
  backend_.scale(combined, static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.base.hidden_size))), combined);
  Tensor normed = scratch_.get(Slot::kPerLayerGate, {tokens, c.base.layers, c.ple_dim});
  backend_.rms_norm(combined.reshaped({tokens, c.base.layers, c.ple_dim}), &text_.per_layer_projection_norm,
                    {.eps = c.base.rms_norm_eps, .weight = c.base.norm_weight}, normed);
  // Token part: the per-layer table looked up by id (image positions already hold the pad id).
  Tensor token = scratch_.get(Slot::kPerLayerInput, {tokens, all});
  backend_.embedding(text_.embed_per_layer, ids_, ple_scale_, token);
  backend_.add(normed.reshaped({tokens, all}), token, combined);
  backend_.scale(combined, static_cast<float>(1.0 / std::sqrt(2.0)), combined);
  return combined;
}

void Gemma4Model::decoder_layer(int i, const Batch& batch, KvCache& cache, const Tensor& per_layer, Tensor& x) {
  const TextConfig& t = config_.text.base;
  const Gemma4DecoderLayerWeights& layer = text_.layers[static_cast<size_t>(i)];
  const int64_t tokens = x.dim(0), hidden = t.hidden_size;
  const backend::RmsNormSpec norm{.eps = t.rms_norm_eps, .weight = t.norm_weight};
  Tensor normed = scratch_.get(Slot::kNormed, {tokens, hidden});
  Tensor branch = scratch_.get(Slot::kBranch, {tokens, hidden});
  Tensor branch_normed = scratch_.get(Slot::kBranchNormed, {tokens, hidden});

  backend_.rms_norm(x, &layer.input_norm, norm, normed);
  attention_block(backend_, layer.attention, attention_[static_cast<size_t>(i)], normed, batch, cache,
                  plans_[static_cast<size_t>(i)].cache_layer, scratch_, branch);
  backend_.rms_norm(branch, &layer.post_attention_norm, norm, branch_normed);
  backend_.add(x, branch_normed, x);

  backend_.rms_norm(x, &layer.pre_feedforward_norm, norm, normed);
  if (layer.moe) {
    // Dense and expert branches each get their own post-norm, then share post_feedforward_layernorm. Sharded, both
    // branches are partial sums and the norms need the full ones: the two sit in one buffer, joined by one reduce.
    Tensor both = scratch_.get(Slot::kMoeBranch, {2 * tokens, hidden});
    Tensor dense = row_block(both, 0, tokens);
    Tensor experts = row_block(both, tokens, tokens);
    gated_mlp(backend_, layer.mlp, t.activation, normed, scratch_, dense);
    gemma4_moe(backend_, *layer.moe, config_.text.top_k_experts, t.rms_norm_eps, t.activation, x, scratch_, experts);
    all_reduce(sharding_, both);
    backend_.rms_norm(dense, &layer.moe->post_feedforward_norm_1, norm, branch_normed);
    backend_.rms_norm(experts, &layer.moe->post_feedforward_norm_2, norm, branch);
    backend_.add(branch_normed, branch, branch);
  } else {
    gated_mlp(backend_, layer.mlp, t.activation, normed, scratch_, branch, reducer(sharding_));
  }
  backend_.rms_norm(branch, &layer.post_feedforward_norm, norm, branch_normed);
  backend_.add(x, branch_normed, x);

  if (config_.text.ple_dim > 0) {
    const int64_t ple = config_.text.ple_dim;
    // Layer i's slice of each row: row r·layers + i of the per-layer inputs seen as [T·layers, ple].
    Tensor input = scratch_.get(Slot::kPerLayerInput, {tokens, ple});
    const Tensor slices = per_layer.reshaped({tokens * t.layers, ple});
    for (int64_t r = 0; r < tokens; ++r) copy_rows(backend_, slices, r * t.layers + i, input, r);
    Tensor gate = scratch_.get(Slot::kPerLayerGate, {tokens, ple});
    linear(backend_, layer.per_layer_input_gate, x, gate);
    backend_.gated_activation(t.activation, gate, input, gate);
    linear(backend_, layer.per_layer_projection, gate, branch);
    backend_.rms_norm(branch, &layer.post_per_layer_input_norm, norm, branch_normed);
    backend_.add(x, branch_normed, x);
  }
  if (layer.layer_scalar != 1.0f) backend_.scale(x, layer.layer_scalar, x);
}

Tensor Gemma4Model::forward(const StepInputs& step, KvCache& cache) {
  if (step.batch == nullptr || step.batch->tokens() == 0) fail(ErrorKind::kInternal, "[gemma4] empty step");
  const Batch& batch = *step.batch;
  if (batch.position_axes != 1) fail(ErrorKind::kInternal, "[gemma4] expects one position axis");
  check_cache_layout(cache, info_, "gemma4");
  const Gemma4TextConfig& c = config_.text;

  // The multimodal model looks image, video and audio placeholders up as the pad id (for both tables); their rows of
  // the main embedding are then replaced by the features.
  ids_.assign(batch.token_ids.begin(), batch.token_ids.end());
  if (multimodal_) {
    for (int32_t& id : ids_) {
      if (id == config_.image_token_id || id == config_.video_token_id || id == config_.audio_token_id) {
        id = c.pad_token_id;
      }
    }
  }
  const bool recordable = !sharding_.active() && std::ranges::equal(ids_, batch.token_ids);
  return runner_.run(backend_, step, cache, recordable, [&] { return forward_logits(step, cache); });
}

Tensor Gemma4Model::forward_logits(const StepInputs& step, KvCache& cache) {
  const Batch& batch = *step.batch;
  const Gemma4TextConfig& c = config_.text;
  const TextConfig& t = c.base;
  const int64_t tokens = batch.tokens();
  Tensor x = scratch_.get(Slot::kResidual, {tokens, t.hidden_size});
  embed_tokens(backend_, sharding_, text_.embed, t.vocab_size, ids_, embed_scale_, x);
  scatter_images(step, x);
  const Tensor per_layer = c.ple_dim > 0 ? per_layer_inputs(x) : Tensor();

  for (int i = 0; i < t.layers; ++i) decoder_layer(i, batch, cache, per_layer, x);

  // Only the rows that need logits go through the final norm and the output projection.
  Tensor rows = x;
  if (!step.all_logits) {
    const auto count = static_cast<int64_t>(batch.sequences.size());
    rows = scratch_.get(Slot::kRows, {count, t.hidden_size});
    for (int64_t s = 0; s < count; ++s) {
      const backend::SequenceSlice& seq = batch.sequences[static_cast<size_t>(s)];
      const int64_t last = seq.token_offset + seq.token_count - 1;
      copy_rows(backend_, x, last, rows, s);
    }
  }
  Tensor final_rows = scratch_.get(Slot::kNormed, rows.shape());
  backend_.rms_norm(rows, &text_.final_norm, {.eps = t.rms_norm_eps, .weight = t.norm_weight}, final_rows);
  return lm_head_logits(backend_, sharding_, text_.lm_head, t.vocab_size, final_rows, t.final_logit_softcap, scratch_);
}

}  // namespace loom::model
