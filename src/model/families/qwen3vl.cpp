#include "model/families/qwen3vl.h"

#include <algorithm>

#include "core/error.h"
#include "model/families/qwen3vl_vision.h"
#include "model/row_ops.h"
#include "model/tensor_parallel.h"
#include "model/weight_loader.h"

namespace loom::model {
namespace {

using backend::Batch;
using backend::KvCache;

constexpr const char* kTowerProbe = "model.visual.patch_embed.proj.weight";

// `prefix` is "model.language_model." (vision-language) or "model." (text-only).
Qwen3TextWeights load_text_weights(const WeightLoader& loader, const Qwen3VLConfig& config, const std::string& prefix,
                                   const Sharding& sharding) {
  const TextConfig& c = config.text;
  const int64_t h = c.hidden_size, inter = c.intermediate_size, d = c.head_dim;
  const int64_t q_rows = int64_t{c.heads} * d, kv_rows = int64_t{c.kv_heads} * d;
  const bool bias = config.attention_bias;
  const HeadShard heads = shard_heads(sharding, c.heads, c.kv_heads, "[qwen3vl] " + prefix + "layers");
  const ShardRange q_part{heads.head_begin * d, heads.heads * d}, kv_part{heads.kv_begin * d, heads.kv_heads * d};
  Qwen3TextWeights w;
  w.embed = load_vocab_table(loader, sharding, prefix + "embed_tokens", c.vocab_size, h);
  for (int i = 0; i < c.layers; ++i) {
    const std::string l = prefix + "layers." + std::to_string(i) + ".";
    Qwen3DecoderLayerWeights layer;
    layer.input_norm = loader.f32(l + "input_layernorm.weight", {h});
    layer.post_attention_norm = loader.f32(l + "post_attention_layernorm.weight", {h});
    layer.attention.q = load_column_parallel(loader, l + "self_attn.q_proj", q_rows, h, q_part, bias);
    layer.attention.k = load_column_parallel(loader, l + "self_attn.k_proj", kv_rows, h, kv_part, bias);
    layer.attention.v = load_column_parallel(loader, l + "self_attn.v_proj", kv_rows, h, kv_part, bias);
    layer.attention.o = load_row_parallel(loader, l + "self_attn.o_proj", h, q_rows, q_part, bias);
    layer.attention.q_norm = loader.f32(l + "self_attn.q_norm.weight", {d});
    layer.attention.k_norm = loader.f32(l + "self_attn.k_norm.weight", {d});
    layer.sparse = config.moe && config.moe->is_sparse(i);
    if (layer.sparse) {
      layer.moe = load_qwen3_moe_weights(loader, l + "mlp", *config.moe, h, sharding);
    } else {
      const ShardRange part = even_shard(sharding, inter, "[qwen3vl] intermediate_size");
      layer.mlp.gate = load_column_parallel(loader, l + "mlp.gate_proj", inter, h, part);
      layer.mlp.up = load_column_parallel(loader, l + "mlp.up_proj", inter, h, part);
      layer.mlp.down = load_row_parallel(loader, l + "mlp.down_proj", h, inter, part);
    }
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = loader.f32(prefix + "norm.weight", {h});
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else if (loader.has("lm_head.weight")) {
    w.lm_head = load_vocab_table(loader, sharding, "lm_head", c.vocab_size, h);
  } else {
    fail(ErrorKind::kInvalidFile,
         "{}: missing tensor lm_head.weight (config.json says tie_word_embeddings is false, so the output projection "
         "is not the embedding)",
         loader.snapshot().dir().string());
  }
  return w;
}

}  // namespace

Qwen3VLModel::Qwen3VLModel(const weights::Snapshot& snapshot, backend::Backend& backend, const Sharding& sharding)
    : backend_(backend), sharding_(sharding), config_(parse_qwen3vl_config(snapshot)) {
  const WeightLoader loader(snapshot);
  const TextConfig& t = config_.text;
  const std::string text_prefix = loader.choose_prefix({"model.language_model.", "model."}, "embed_tokens.weight");
  text_ = load_text_weights(loader, config_, text_prefix, sharding_);
  const HeadShard heads = shard_heads(sharding_, t.heads, t.kv_heads, "[qwen3vl] attention");
  upload_text_weights();
  rope_ = backend::make_rope_table(t.rope_full);
  attention_ = {
      .heads = heads.heads,
      .kv_heads = heads.kv_heads,
      .head_dim = t.head_dim,
      .qk_norm = {.eps = t.rms_norm_eps, .weight = t.norm_weight},
      .rope = &rope_,
      .mask = {.scale = t.attention_scale, .mask = backend::MaskKind::kCausal},
      .reduce = reducer(sharding_),
  };

  const int64_t width = t.hidden_size * (1 + config_.deepstack_layers);
  // A VL snapshot stripped of its vision tower still serves text; encode_image then refuses.
  if (config_.vision && loader.has(kTowerProbe)) {
    auto tower = std::make_shared<Qwen3VLVisionTower>(snapshot, loader, backend);
    const int64_t hidden = t.hidden_size;
    const auto deepstack = static_cast<size_t>(config_.deepstack_layers);
    encode_ = [tower, hidden, deepstack, width, &backend](const ImagePixels& image) {
      const Qwen3VLImageFeatures f = tower->encode(image);
      const int64_t rows = f.embeddings.rank() == 2 ? f.embeddings.dim(0) : -1;
      bool ok = f.embeddings.dtype() == DType::kF32 && rows >= 0 && f.embeddings.dim(1) == hidden &&
                f.deepstack.size() == deepstack;
      for (const Tensor& d : f.deepstack) ok = ok && d.dtype() == DType::kF32 && d.shape() == f.embeddings.shape();
      if (!ok) {
        fail(ErrorKind::kInternal,
             "[qwen3vl] the vision tower returned {} and {} deepstack features; expected F32 "
             "[soft_tokens, {}] and {} of the same shape",
             shape_string(f.embeddings.shape()), f.deepstack.size(), hidden, deepstack);
      }
      // One row per soft token: [merger | deepstack 0 | deepstack 1 | …], i.e. row r·parts + part of the result
      // seen as [rows·parts, hidden], assembled in the backend's memory.
      const auto parts = static_cast<int64_t>(deepstack) + 1;
      Tensor out = backend.allocate(DType::kF32, {rows, width});
      Tensor pieces = out.reshaped({rows * parts, hidden});
      for (int64_t part = 0; part < parts; ++part) {
        const Tensor& src = part == 0 ? f.embeddings : f.deepstack[static_cast<size_t>(part - 1)];
        for (int64_t r = 0; r < rows; ++r) copy_rows(backend, src, r, pieces, r * parts + part);
      }
      return out;
    };
  }

  info_.architecture = config_.architecture;
  info_.vocab_size = t.vocab_size;
  info_.hidden_size = t.hidden_size;
  info_.image_embedding_width = config_.vision ? width : 0;
  info_.context_length = t.max_position_embeddings;
  info_.position_axes = config_.vision ? 3 : 1;
  info_.kv.assign(static_cast<size_t>(t.layers), {.kv_heads = heads.kv_heads, .head_dim = t.head_dim});
  info_.stop_ids = config_.stop_ids;
  info_.image_token_id = config_.vision ? config_.image_token_id : -1;
  info_.bidirectional_images = false;  // Qwen3-VL's decoder is causal over image tokens too
}

void Qwen3VLModel::upload_text_weights() {
  // A tied lm_head shares the embedding's storage on the host; keep it shared in the backend's memory too.
  const bool tied = text_.lm_head.values.data() == text_.embed.values.data();
  text_.embed = backend_.upload(text_.embed);
  text_.lm_head = tied ? text_.embed : backend_.upload(text_.lm_head);
  for (Qwen3DecoderLayerWeights& layer : text_.layers) {
    upload(backend_, layer.input_norm);
    upload(backend_, layer.post_attention_norm);
    upload(backend_, layer.attention);
    if (layer.sparse) {
      upload(backend_, layer.moe);
    } else {
      upload(backend_, layer.mlp);
    }
  }
  upload(backend_, text_.final_norm);
}

Tensor Qwen3VLModel::encode_image(const ImagePixels& image) {
  if (!config_.vision) fail(ErrorKind::kUnsupported, "{} is a text-only model: it takes no images", info_.architecture);
  if (!encode_) {
    fail(ErrorKind::kUnsupported, "{}: the snapshot has no vision tower (no tensor {}): it serves text only",
         info_.architecture, kTowerProbe);
  }
  Tensor embeddings = encode_(image);
  if (image.soft_tokens != 0 && embeddings.dim(0) != image.soft_tokens) {
    fail(ErrorKind::kInvalidRequest, "[qwen3vl] image declares {} soft tokens, its grid [{}, {}, {}] makes {}",
         image.soft_tokens, image.grid_thw[0], image.grid_thw[1], image.grid_thw[2], embeddings.dim(0));
  }
  return embeddings;
}

void Qwen3VLModel::scatter_images(const StepInputs& step, Tensor& x) {
  const Batch& batch = *step.batch;
  const int64_t hidden = config_.text.hidden_size;
  const int64_t width = info_.image_width();
  for (const ImageRows& rows : step.images) {
    const Tensor& e = rows.embeddings;
    if (!config_.vision || e.dtype() != DType::kF32 || e.rank() != 2 || e.dim(1) != width || rows.row_begin < 0 ||
        rows.row_begin + e.dim(0) > batch.tokens()) {
      fail(ErrorKind::kInternal, "[qwen3vl] image rows [{}, +{}) of width {} do not fit a step of {} tokens × {}",
           rows.row_begin, e.rank() == 2 ? e.dim(0) : -1, e.rank() == 2 ? e.dim(1) : -1, batch.tokens(), width);
    }
    for (int64_t r = 0; r < e.dim(0); ++r) {
      const int32_t id = batch.token_ids[static_cast<size_t>(rows.row_begin + r)];
      if (id != config_.image_token_id) {
        fail(ErrorKind::kInternal, "[qwen3vl] image embedding row {} lands on token id {}, not the image token {}",
             rows.row_begin + r, id, config_.image_token_id);
      }
    }
    // Row r's merger part is row r·parts of the embeddings seen as [rows·parts, hidden].
    const int64_t parts = width / hidden;
    const Tensor pieces = e.reshaped({e.dim(0) * parts, hidden});
    for (int64_t r = 0; r < e.dim(0); ++r) copy_rows(backend_, pieces, r * parts, x, rows.row_begin + r);
  }
}

void Qwen3VLModel::add_deepstack(const StepInputs& step, int index, Tensor& x) {
  const int64_t hidden = config_.text.hidden_size;
  const int64_t parts = info_.image_width() / hidden;
  for (const ImageRows& rows : step.images) {
    const Tensor& e = rows.embeddings;
    const int64_t n = e.dim(0);
    // DeepStack part `index` of every image row, gathered (from host or backend memory) into the backend's memory.
    Tensor features = scratch_.get(Slot::kDeepstack, {n, hidden});
    const Tensor pieces = e.reshaped({n * parts, hidden});
    for (int64_t r = 0; r < n; ++r) copy_rows(backend_, pieces, r * parts + 1 + index, features, r);
    Tensor target = row_block(x, rows.row_begin, n);
    backend_.add(target, features, target);
  }
}

Tensor Qwen3VLModel::forward(const StepInputs& step, KvCache& cache) {
  if (step.batch == nullptr || step.batch->tokens() == 0) fail(ErrorKind::kInternal, "[qwen3vl] empty step");
  const Batch& batch = *step.batch;
  if (batch.position_axes != info_.position_axes) {
    fail(ErrorKind::kInternal, "[qwen3vl] expects {} position axes, the batch has {}", info_.position_axes,
         batch.position_axes);
  }
  check_cache_layout(cache, info_, "qwen3vl");
  const TextConfig& c = config_.text;

  // An image token id beyond the vocabulary is looked up as id 0; its row is replaced by the image anyway.
  ids_.assign(batch.token_ids.begin(), batch.token_ids.end());
  if (config_.vision && config_.image_token_id >= c.vocab_size) {
    for (int32_t& id : ids_) id = id == config_.image_token_id ? 0 : id;
  }
  const bool recordable = !sharding_.active() && std::ranges::equal(ids_, batch.token_ids);
  return runner_.run(backend_, step, cache, recordable, [&] { return forward_logits(step, cache); });
}

Tensor Qwen3VLModel::forward_logits(const StepInputs& step, KvCache& cache) {
  const Batch& batch = *step.batch;
  const TextConfig& c = config_.text;
  const int64_t tokens = batch.tokens();
  Tensor x = scratch_.get(Slot::kResidual, {tokens, c.hidden_size});
  embed_tokens(backend_, sharding_, text_.embed, c.vocab_size, ids_, 1.0f, x);
  scatter_images(step, x);

  const backend::RmsNormSpec norm{.eps = c.rms_norm_eps, .weight = c.norm_weight};
  Tensor normed = scratch_.get(Slot::kNormed, {tokens, c.hidden_size});
  Tensor branch = scratch_.get(Slot::kBranch, {tokens, c.hidden_size});
  for (int i = 0; i < c.layers; ++i) {
    const Qwen3DecoderLayerWeights& layer = text_.layers[static_cast<size_t>(i)];
    backend_.rms_norm(x, &layer.input_norm, norm, normed);
    attention_block(backend_, layer.attention, attention_, normed, batch, cache, i, scratch_, branch);
    backend_.add(x, branch, x);
    backend_.rms_norm(x, &layer.post_attention_norm, norm, normed);
    if (layer.sparse) {
      moe_block(backend_, layer.moe, *config_.moe, c.activation, normed, scratch_, branch, reducer(sharding_));
    } else {
      gated_mlp(backend_, layer.mlp, c.activation, normed, scratch_, branch, reducer(sharding_));
    }
    backend_.add(x, branch, x);
    if (i < config_.deepstack_layers) add_deepstack(step, i, x);
  }

  // Only the rows that need logits go through the final norm and the output projection.
  Tensor rows = x;
  if (!step.all_logits) {
    const auto count = static_cast<int64_t>(batch.sequences.size());
    rows = scratch_.get(Slot::kRows, {count, c.hidden_size});
    for (int64_t s = 0; s < count; ++s) {
      const backend::SequenceSlice& seq = batch.sequences[static_cast<size_t>(s)];
      const int64_t last = seq.token_offset + seq.token_count - 1;
      copy_rows(backend_, x, last, rows, s);
    }
  }
  Tensor final_rows = scratch_.get(Slot::kNormed, rows.shape());
  backend_.rms_norm(rows, &text_.final_norm, norm, final_rows);
  return lm_head_logits(backend_, sharding_, text_.lm_head, c.vocab_size, final_rows, 0.0f, scratch_);
}

}  // namespace loom::model
