#pragma once
// Typed model configuration read from a snapshot's config.json. The structs hold every knob a family's math depends
// on as data (norm style, embedding scale, per-layer attention kind and RoPE, softcaps), so shared layer code never
// asks which architecture it is running. A family fills them from its own defaults plus what config.json says;
// `JsonFields` does the reading and makes every error name the file and the field path.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/ops.h"
#include "backend/rope_table.h"

namespace loom::weights {
class Snapshot;
}

namespace loom::model {

// Reads typed fields of one JSON object. `where` names the file and object ("config.json: text_config") in errors;
// a present field of the wrong type throws loom::Error(kInvalidFile) naming it; a null value counts as absent.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string where);

  bool has(std::string_view key) const;
  const nlohmann::json* find(std::string_view key) const;  // nullptr when absent or null
  const std::string& where() const { return where_; }

  int64_t integer(std::string_view key) const;  // required
  int64_t integer(std::string_view key, int64_t fallback) const;
  // A size, count or id: a positive integer up to 2^30 (positive_int) or 2^40 (positive_int64).
  int positive_int(std::string_view key, int64_t fallback) const;
  int64_t positive_int64(std::string_view key, int64_t fallback) const;
  double number(std::string_view key) const;  // required
  double number(std::string_view key, double fallback) const;
  std::optional<double> optional_number(std::string_view key) const;
  bool boolean(std::string_view key, bool fallback) const;
  std::string string(std::string_view key, std::string_view fallback) const;
  // An integer or a list of integers (eos_token_id); empty when absent.
  std::vector<int32_t> integer_list(std::string_view key) const;
  // A nested object (text_config); nullopt when absent.
  std::optional<JsonFields> object(std::string_view key) const;

  [[noreturn]] void invalid(std::string_view key, std::string_view expectation) const;

 private:
  const nlohmann::json* object_;
  std::string where_;
};

// Which mask a decoder layer's attention uses; the names are transformers' `layer_types` spellings.
enum class LayerKind : uint8_t { kFullAttention, kSlidingAttention };

// "gelu_pytorch_tanh", "gelu", "silu", … → Activation; throws kUnsupported naming the field.
backend::Activation parse_activation(const JsonFields& fields, std::string_view key, std::string_view fallback);

// The decoder of a language model.
struct TextConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int layers = 0;
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int64_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  backend::NormWeight norm_weight = backend::NormWeight::kScale;  // Gemma 3: kOnePlus
  backend::Activation activation = backend::Activation::kSilu;
  float attention_scale = 0;  // multiplies q·k (Gemma 3: query_pre_attn_scalar^-0.5)
  int64_t sliding_window = 0;
  float attn_logit_softcap = 0;   // 0: none
  float final_logit_softcap = 0;  // 0: none
  bool tie_word_embeddings = true;
  // Embeddings are multiplied by this after the lookup (Gemma: sqrt(hidden) rounded to the embedding dtype; 1 else).
  bool scale_embeddings = false;
  std::vector<LayerKind> layer_types;  // one per layer
  // RoPE per layer kind (head_dim filled in).
  backend::RopeSpec rope_full;
  backend::RopeSpec rope_sliding;

  const backend::RopeSpec& rope_for(LayerKind kind) const {
    return kind == LayerKind::kFullAttention ? rope_full : rope_sliding;
  }
};

// A ViT-style vision encoder (SigLIP).
struct VisionConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int layers = 0;
  int heads = 0;
  int channels = 3;
  int64_t image_size = 0;
  int patch_size = 0;
  float layer_norm_eps = 1e-6f;
  backend::Activation activation = backend::Activation::kGeluTanh;

  int64_t patches_per_side() const { return image_size / patch_size; }
  int head_dim() const { return static_cast<int>(hidden_size / heads); }
};

// `layer_types` when present (checked against `layers`), else every `pattern`-th layer full attention (layer i is
// full when (i+1) % pattern == 0). Unknown names throw kUnsupported naming the entry.
std::vector<LayerKind> parse_layer_types(const JsonFields& text, int layers, int64_t pattern);

// RoPE for one layer kind from transformers-5 `rope_parameters` ({"full_attention": {...}, "sliding_attention":
// {...}} or one flat dict) or the older `rope_theta` + `rope_scaling` form. `theta_key`/`default_theta` give the
// legacy theta field of this kind (rope_theta / rope_local_base_freq); `legacy_scaling` says whether the legacy
// `rope_scaling` applies to this kind. Supported rope_type: default, linear, proportional.
backend::RopeSpec parse_rope(const JsonFields& text, std::string_view layer_type, std::string_view theta_key,
                             double default_theta, bool legacy_scaling, int head_dim);

// End-of-generation ids: generation_config.json `eos_token_id` when present, else config.json's (top level, then
// text_config), deduplicated in order.
std::vector<int32_t> read_stop_ids(const weights::Snapshot& snapshot);

}  // namespace loom::model
