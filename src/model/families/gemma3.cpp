#include "model/families/gemma3.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/float_formats.h"
#include "model/tensor_parallel.h"
#include "model/weight_loader.h"

namespace loom::model {
namespace {

using backend::Batch;
using backend::KvCache;

// The text decoder's manifest. `prefix` is "model.language_model." (multimodal) or "model." (text-only).
Gemma3TextWeights load_text_weights(const WeightLoader& loader, const TextConfig& c, const std::string& prefix,
                                    const Sharding& sharding) {
  const int64_t h = c.hidden_size, inter = c.intermediate_size, d = c.head_dim;
  const int64_t q_rows = int64_t{c.heads} * d, kv_rows = int64_t{c.kv_heads} * d;
  const HeadShard heads = shard_heads(sharding, c.heads, c.kv_heads, "[gemma3] " + prefix + "layers");
  const ShardRange q_part{heads.head_begin * d, heads.heads * d}, kv_part{heads.kv_begin * d, heads.kv_heads * d};
  const ShardRange mlp_part = even_shard(sharding, inter, "[gemma3] intermediate_size");
  Gemma3TextWeights w;
  w.embed = load_vocab_table(loader, sharding, prefix + "embed_tokens", c.vocab_size, h);
  for (int i = 0; i < c.layers; ++i) {
    const std::string l = prefix + "layers." + std::to_string(i) + ".";
    Gemma3DecoderLayerWeights layer;
    layer.input_norm = loader.f32(l + "input_layernorm.weight", {h});
    layer.post_attention_norm = loader.f32(l + "post_attention_layernorm.weight", {h});
    layer.pre_feedforward_norm = loader.f32(l + "pre_feedforward_layernorm.weight", {h});
    layer.post_feedforward_norm = loader.f32(l + "post_feedforward_layernorm.weight", {h});
    layer.attention.q = load_column_parallel(loader, l + "self_attn.q_proj", q_rows, h, q_part);
    layer.attention.k = load_column_parallel(loader, l + "self_attn.k_proj", kv_rows, h, kv_part);
    layer.attention.v = load_column_parallel(loader, l + "self_attn.v_proj", kv_rows, h, kv_part);
    layer.attention.o = load_row_parallel(loader, l + "self_attn.o_proj", h, q_rows, q_part);
    layer.attention.q_norm = loader.f32(l + "self_attn.q_norm.weight", {d});
    layer.attention.k_norm = loader.f32(l + "self_attn.k_norm.weight", {d});
    layer.mlp.gate = load_column_parallel(loader, l + "mlp.gate_proj", inter, h, mlp_part);
    layer.mlp.up = load_column_parallel(loader, l + "mlp.up_proj", inter, h, mlp_part);
    layer.mlp.down = load_row_parallel(loader, l + "mlp.down_proj", h, inter, mlp_part);
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = loader.f32(prefix + "norm.weight", {h});
  // Gemma ties the output projection to the embedding; some MLX snapshots carry a separate (quantized) lm_head.
  w.lm_head = loader.has("lm_head.weight") ? load_vocab_table(loader, sharding, "lm_head", c.vocab_size, h) : w.embed;
  return w;
}

}  // namespace

float gemma3_embedding_scale(const weights::Weight& embed, int64_t hidden) {
  const auto scale = static_cast<float>(std::sqrt(static_cast<double>(hidden)));
  const DType dtype = embed.quant.mode == weights::QuantMode::kNone ? embed.values.dtype() : embed.scales.dtype();
  switch (dtype) {
    case DType::kF32:
      return scale;
    case DType::kF16:
      return f16_to_float(float_to_f16(scale));
    default:  // BF16, and the byte scales of the MX formats (whose models compute in bf16)
      return bf16_to_float(float_to_bf16(scale));
  }
}

Gemma3Model::Gemma3Model(const weights::Snapshot& snapshot, backend::Backend& backend, const Sharding& sharding)
    : backend_(backend), sharding_(sharding), config_(parse_gemma3_config(snapshot)) {
  const WeightLoader loader(snapshot);
  const TextConfig& t = config_.text;
  const std::string text_prefix = loader.choose_prefix({"model.language_model.", "model."}, "embed_tokens.weight");
  text_ = load_text_weights(loader, t, text_prefix, sharding_);
  const HeadShard heads = shard_heads(sharding_, t.heads, t.kv_heads, "[gemma3] attention");
  embed_scale_ = gemma3_embedding_scale(text_.embed, t.hidden_size);
  upload_text_weights();

  rope_full_ = backend::make_rope_table(t.rope_full);
  rope_sliding_ = backend::make_rope_table(t.rope_sliding);
  for (int i = 0; i < t.layers; ++i) {
    const bool sliding = t.layer_types[static_cast<size_t>(i)] == LayerKind::kSlidingAttention;
    attention_.push_back({
        .heads = heads.heads,
        .kv_heads = heads.kv_heads,
        .head_dim = t.head_dim,
        .qk_norm = {.eps = t.rms_norm_eps, .weight = t.norm_weight},
        .rope = sliding ? &rope_sliding_ : &rope_full_,
        .mask = {.scale = t.attention_scale,
                 .mask = sliding ? backend::MaskKind::kSliding : backend::MaskKind::kCausal,
                 .window = sliding ? t.sliding_window : 0,
                 .logit_softcap = t.attn_logit_softcap},
        .reduce = reducer(sharding_),
    });
  }

  if (config_.vision) {
    const VisionConfig& v = *config_.vision;
    const std::string vision_prefix = loader.choose_prefix({"model.vision_tower.vision_model.", "model.vision_tower."},
                                                           "embeddings.patch_embedding.weight");
    SiglipWeights tower = load_siglip_weights(loader, v, vision_prefix);
    upload(backend_, tower);
    tower_.emplace(v, std::move(tower));
    projector_.soft_emb_norm = loader.f32("model.multi_modal_projector.mm_soft_emb_norm.weight", {v.hidden_size});
    projector_.projection = loader.matrix_transposed("model.multi_modal_projector.mm_input_projection_weight",
                                                     t.hidden_size, v.hidden_size);
    upload(backend_, projector_.soft_emb_norm);
    projector_.projection = backend_.upload(projector_.projection);
  }

  info_.architecture = config_.architecture;
  info_.vocab_size = t.vocab_size;
  info_.hidden_size = t.hidden_size;
  info_.context_length = t.max_position_embeddings;
  info_.position_axes = 1;
  info_.kv.assign(static_cast<size_t>(t.layers), {.kv_heads = heads.kv_heads, .head_dim = t.head_dim});
  info_.stop_ids = config_.stop_ids;
  info_.image_token_id = config_.vision ? config_.image_token_id : -1;
  info_.bidirectional_images = config_.vision.has_value();
}

void Gemma3Model::upload_text_weights() {
  // A tied lm_head shares the embedding's storage on the host; keep it shared on the device too.
  const bool tied = text_.lm_head.values.data() == text_.embed.values.data();
  text_.embed = backend_.upload(text_.embed);
  text_.lm_head = tied ? text_.embed : backend_.upload(text_.lm_head);
  for (Gemma3DecoderLayerWeights& layer : text_.layers) {
    for (Tensor* t :
         {&layer.input_norm, &layer.post_attention_norm, &layer.pre_feedforward_norm, &layer.post_feedforward_norm}) {
      upload(backend_, *t);
    }
    upload(backend_, layer.attention);
    upload(backend_, layer.mlp);
  }
  upload(backend_, text_.final_norm);
}

Tensor Gemma3Model::encode_image(const ImagePixels& image) {
  if (!tower_) fail(ErrorKind::kUnsupported, "{} is a text-only model: it takes no images", info_.architecture);
  const VisionConfig& v = *config_.vision;
  const Tensor hidden = tower_->encode(backend_, image.pixel_values, vision_scratch_);
  const int64_t images = image.pixel_values.dim(0);
  const int64_t tokens = config_.mm_tokens_per_image;
  if (image.soft_tokens != 0 && image.soft_tokens != images * tokens) {
    fail(ErrorKind::kInvalidRequest, "[gemma3] image declares {} soft tokens, its {} crops make {}", image.soft_tokens,
         images, images * tokens);
  }
  // AvgPool2d over each image's patch grid down to a square of mm_tokens_per_image cells.
  const int64_t side = v.patches_per_side();
  const auto kernel = static_cast<int>(side / std::llround(std::sqrt(static_cast<double>(tokens))));
  const int64_t per_image = side * side;
  Tensor pooled = vision_scratch_.get(Slot::kPooled, {images * tokens, v.hidden_size});
  for (int64_t i = 0; i < images; ++i) {
    const Tensor in = row_block(hidden, i * per_image, per_image);
    Tensor out = row_block(pooled, i * tokens, tokens);
    backend_.avg_pool_2d(in, side, side, kernel, out);
  }
  Tensor normed = vision_scratch_.get(Slot::kBranchNormed, pooled.shape());
  backend_.rms_norm(pooled, &projector_.soft_emb_norm,
                    {.eps = v.layer_norm_eps, .weight = backend::NormWeight::kOnePlus}, normed);
  Tensor embeddings = backend_.allocate(DType::kF32, {images * tokens, config_.text.hidden_size});
  backend_.matmul(normed, projector_.projection, embeddings);
  return embeddings;
}

void Gemma3Model::scatter_images(const StepInputs& step, Tensor& x) {
  const Batch& batch = *step.batch;
  const int64_t hidden = config_.text.hidden_size;
  for (const ImageRows& rows : step.images) {
    const Tensor& e = rows.embeddings;
    if (e.dtype() != DType::kF32 || e.rank() != 2 || e.dim(1) != hidden || rows.row_begin < 0 ||
        rows.row_begin + e.dim(0) > batch.tokens()) {
      fail(ErrorKind::kInternal, "[gemma3] image rows [{}, +{}) of width {} do not fit a step of {} tokens × {}",
           rows.row_begin, e.rank() == 2 ? e.dim(0) : -1, e.rank() == 2 ? e.dim(1) : -1, batch.tokens(), hidden);
    }
    for (int64_t r = 0; r < e.dim(0); ++r) {
      const int32_t id = batch.token_ids[static_cast<size_t>(rows.row_begin + r)];
      if (id != config_.image_token_id) {
        fail(ErrorKind::kInternal, "[gemma3] image embedding row {} lands on token id {}, not the image token {}",
             rows.row_begin + r, id, config_.image_token_id);
      }
    }
    Tensor target = row_block(x, rows.row_begin, e.dim(0));
    backend_.copy(e, target);
  }
}

Tensor Gemma3Model::forward(const StepInputs& step, KvCache& cache) {
  if (step.batch == nullptr || step.batch->tokens() == 0) fail(ErrorKind::kInternal, "[gemma3] empty step");
  const Batch& batch = *step.batch;
  if (batch.position_axes != 1) fail(ErrorKind::kInternal, "[gemma3] expects one position axis");
  check_cache_layout(cache, info_, "gemma3");
  const TextConfig& c = config_.text;

  // An image token id beyond the vocabulary is looked up as id 0; its row is replaced by the image anyway.
  ids_.assign(batch.token_ids.begin(), batch.token_ids.end());
  if (config_.image_token_id >= c.vocab_size) {
    for (int32_t& id : ids_) id = id == config_.image_token_id ? 0 : id;
  }
  const bool recordable = !sharding_.active() && std::ranges::equal(ids_, batch.token_ids);
  return runner_.run(backend_, step, cache, recordable, [&] { return forward_logits(step, cache); });
}

Tensor Gemma3Model::forward_logits(const StepInputs& step, KvCache& cache) {
  const Batch& batch = *step.batch;
  const TextConfig& c = config_.text;
  const int64_t tokens = batch.tokens();
  Tensor x = scratch_.get(Slot::kResidual, {tokens, c.hidden_size});
  embed_tokens(backend_, sharding_, text_.embed, c.vocab_size, ids_, embed_scale_, x);
  scatter_images(step, x);

  const backend::RmsNormSpec norm{.eps = c.rms_norm_eps, .weight = c.norm_weight};
  Tensor normed = scratch_.get(Slot::kNormed, {tokens, c.hidden_size});
  Tensor branch = scratch_.get(Slot::kBranch, {tokens, c.hidden_size});
  Tensor branch_normed = scratch_.get(Slot::kBranchNormed, {tokens, c.hidden_size});
  for (int i = 0; i < c.layers; ++i) {
    const Gemma3DecoderLayerWeights& layer = text_.layers[static_cast<size_t>(i)];
    backend_.rms_norm(x, &layer.input_norm, norm, normed);
    attention_block(backend_, layer.attention, attention_[static_cast<size_t>(i)], normed, batch, cache, i, scratch_,
                    branch);
    backend_.rms_norm(branch, &layer.post_attention_norm, norm, branch_normed);
    backend_.add(x, branch_normed, x);
    backend_.rms_norm(x, &layer.pre_feedforward_norm, norm, normed);
    gated_mlp(backend_, layer.mlp, c.activation, normed, scratch_, branch, reducer(sharding_));
    backend_.rms_norm(branch, &layer.post_feedforward_norm, norm, branch_normed);
    backend_.add(x, branch_normed, x);
  }

  // Only the rows that need logits go through the final norm and the output projection.
  Tensor rows = x;
  if (!step.all_logits) {
    const auto count = static_cast<int64_t>(batch.sequences.size());
    rows = scratch_.get(Slot::kRows, {count, c.hidden_size});
    for (int64_t s = 0; s < count; ++s) {
      const backend::SequenceSlice& seq = batch.sequences[static_cast<size_t>(s)];
      const int64_t last = seq.token_offset + seq.token_count - 1;
      Tensor target = row_block(rows, s, 1);
      backend_.copy(row_block(x, last, 1), target);
    }
  }
  Tensor final_rows = scratch_.get(Slot::kNormed, rows.shape());
  backend_.rms_norm(rows, &text_.final_norm, norm, final_rows);
  return lm_head_logits(backend_, sharding_, text_.lm_head, c.vocab_size, final_rows, c.final_logit_softcap, scratch_);
}

}  // namespace loom::model
