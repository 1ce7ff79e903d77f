#pragma once
// Gemma 4's configuration: transformers' Gemma4TextConfig defaults overlaid with config.json, and the per-layer plan
// the decoder is built from. Gemma 4 layers differ from one another in ways Gemma 3's never did: full-attention layers
// have their own head_dim (global_head_dim) and, with attention_k_eq_v, their own KV head count; the last
// num_kv_shared_layers layers store no K/V but read the cache of the last earlier layer of their type; those layers
// get a double-wide MLP when use_double_wide_mlp is set. Gemma4LayerPlan spells all of that out per layer so the
// model code never recomputes the rules.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/kv_cache.h"
#include "model/config.h"

namespace loom::weights {
class Snapshot;
}

namespace loom::model {

struct Gemma4TextConfig {
  // The fields Gemma 3 also has. norm_weight is kScale (no +1), attention_scale 1, head_dim is the sliding layers'
  // (rope_full carries global_head_dim), attn_logit_softcap 0.
  TextConfig base;
  int global_head_dim = 0;  // head_dim of the full layers
  int global_kv_heads = 0;  // KV heads of full layers (num_global_key_value_heads with k_eq_v, else kv_heads)
  // Per layer: head_dim and KV heads. Hub configs give global_head_dim / num_global_key_value_heads; configs written
  // by transformers 5 give `per_layer_config` {"<layer index>": {"head_dim", "num_key_value_heads"}} instead.
  std::vector<int> layer_head_dim;
  std::vector<int> layer_kv_heads;
  int64_t ple_dim = 0;                // hidden_size_per_layer_input; 0: no per-layer embeddings
  int64_t ple_vocab = 0;              // vocab_size_per_layer_input
  int kv_shared_layers = 0;           // num_kv_shared_layers
  bool double_wide_mlp = false;       // use_double_wide_mlp
  bool k_eq_v = false;                // attention_k_eq_v: full layers have no v_proj, values are the keys
  bool bidirectional_vision = false;  // use_bidirectional_attention == "vision"
  bool moe = false;                   // enable_moe_block
  int experts = 0;
  int top_k_experts = 0;
  int64_t moe_intermediate_size = 0;
  int32_t pad_token_id = 0;
};

// What one decoder layer is.
struct Gemma4LayerPlan {
  LayerKind kind = LayerKind::kSlidingAttention;
  int head_dim = 0;
  int kv_heads = 0;
  bool k_eq_v = false;    // no v_proj: the values are the key projection
  bool stores_kv = true;  // false: a KV-shared layer (no k/v projections, nothing appended)
  int cache_layer = 0;    // the KV cache layer it appends to, or reads from when shared
  int64_t intermediate_size = 0;
};

struct Gemma4Config {
  std::string architecture;
  Gemma4TextConfig text;
  bool has_vision = false;  // config.json has a vision_config
  int32_t image_token_id = -1;
  int32_t video_token_id = -1;
  int32_t audio_token_id = -1;
  int32_t boi_token_id = -1;
  int32_t eoi_token_id = -1;
  std::vector<int32_t> stop_ids;
};

// Throws loom::Error(kInvalidFile) naming config.json and the field for a malformed value, kUnsupported for a feature
// loom does not implement (use_bidirectional_attention "all", attention_bias, an unknown rope_type or activation).
Gemma4Config parse_gemma4_config(const weights::Snapshot& snapshot);

// The text config alone from one JSON object (`where` names it in errors): what parse_gemma4_config does for
// text_config, exposed for tests.
Gemma4TextConfig parse_gemma4_text_config(const nlohmann::json& text, const std::string& where);

// One plan per layer. KV-shared layers (index ≥ layers − num_kv_shared_layers) take the cache layer of the last
// non-shared layer of the same type; cache layers are numbered in order over the layers that store K/V. Throws
// kInvalidFile naming num_kv_shared_layers when a shared layer has no earlier layer of its type to read from.
std::vector<Gemma4LayerPlan> plan_gemma4_layers(const Gemma4TextConfig& config);

// ModelInfo::kv: the shapes of the layers that store K/V, in cache-layer order.
std::vector<backend::KvLayerShape> gemma4_kv_layers(const std::vector<Gemma4LayerPlan>& plans);

}  // namespace loom::model
