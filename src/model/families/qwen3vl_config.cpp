#include "model/families/qwen3vl_config.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

// Which transformers config class supplies the defaults.
enum class Variant { kVl, kVlMoe, kText, kTextMoe };

struct Defaults {
  int64_t hidden, intermediate, layers, heads, kv_heads, head_dim;  // head_dim 0: hidden / heads
  int64_t max_positions;
  double theta;
  int64_t experts, top_k, moe_intermediate;
  bool normalize_top_k;
};

// Qwen3VLTextConfig, Qwen3VLMoeTextConfig, Qwen3Config, Qwen3MoeConfig (transformers 5.17).
Defaults defaults_for(Variant v) {
  switch (v) {
    case Variant::kVl:
      return {4096, 22016, 32, 32, 32, 128, 128'000, 500'000.0, 0, 0, 0, true};
    case Variant::kVlMoe:
      return {2048, 5632, 24, 16, 16, 0, 128'000, 500'000.0, 60, 4, 1408, true};
    case Variant::kText:
      return {4096, 22016, 32, 32, 32, 128, 32'768, 10'000.0, 0, 0, 0, true};
    case Variant::kTextMoe:
      return {2048, 6144, 24, 32, 4, 0, 32'768, 10'000.0, 128, 8, 768, false};
  }
  return {};
}

constexpr int64_t kDefaultVocab = 151'936;
constexpr int64_t kDefaultImageToken = 151'655;
constexpr int64_t kDefaultVideoToken = 151'656;
constexpr int64_t kDefaultVisionStart = 151'652;
constexpr int64_t kDefaultVisionEnd = 151'653;
constexpr std::array<int, 3> kDefaultMropeSection{24, 20, 20};

Variant variant_of(const weights::Snapshot& snapshot) {
  const std::string& a = snapshot.architecture();
  if (a == "Qwen3VLMoeForConditionalGeneration" || a == "qwen3_vl_moe") return Variant::kVlMoe;
  if (a == "Qwen3VLForConditionalGeneration" || a == "qwen3_vl") return Variant::kVl;
  if (a == "Qwen3MoeForCausalLM" || a == "qwen3_moe") return Variant::kTextMoe;
  return Variant::kText;
}

// mrope_section from rope_parameters (transformers 5) or rope_scaling (older configs).
std::array<int, 3> parse_mrope_section(const JsonFields& text) {
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    const std::optional<JsonFields> params = text.object(key);
    if (!params) continue;
    const std::vector<int32_t> section = params->integer_list("mrope_section");
    if (section.empty()) continue;
    if (section.size() != 3 || std::any_of(section.begin(), section.end(), [](int32_t s) { return s < 0; })) {
      params->invalid("mrope_section", "three non-negative integers [t, h, w]");
    }
    return {section[0], section[1], section[2]};
  }
  return kDefaultMropeSection;
}

Qwen3MoeConfig parse_moe(const JsonFields& f, const Defaults& d, Variant v, int layers) {
  Qwen3MoeConfig m;
  // transformers 5 writes num_local_experts (its attribute_map alias of num_experts); Hub configs say num_experts.
  m.experts = f.positive_int(f.has("num_experts") ? "num_experts" : "num_local_experts", d.experts);
  m.top_k = f.positive_int("num_experts_per_tok", d.top_k);
  if (m.top_k > m.experts) f.invalid("num_experts_per_tok", "at most num_experts");
  m.intermediate_size = f.positive_int64("moe_intermediate_size", d.moe_intermediate);
  // Qwen3-VL-MoE's router always renormalises the top-k weights; Qwen3-MoE does when norm_topk_prob is set.
  m.normalize_top_k = v == Variant::kVlMoe ? true : f.boolean("norm_topk_prob", d.normalize_top_k);
  m.sparse_step = f.positive_int("decoder_sparse_step", 1);
  for (int32_t layer : f.integer_list("mlp_only_layers")) {
    if (layer < 0 || layer >= layers) f.invalid("mlp_only_layers", "layer indices below num_hidden_layers");
    m.mlp_only_layers.push_back(layer);
  }
  return m;
}

TextConfig parse_text(const JsonFields& f, const Defaults& d, bool mrope) {
  if (f.boolean("use_sliding_window", false)) {
    fail(ErrorKind::kUnsupported, "{}: use_sliding_window is not supported for Qwen3 models", f.where());
  }
  TextConfig t;
  t.vocab_size = f.positive_int64("vocab_size", kDefaultVocab);
  t.hidden_size = f.positive_int64("hidden_size", d.hidden);
  t.intermediate_size = f.positive_int64("intermediate_size", d.intermediate);
  t.layers = f.positive_int("num_hidden_layers", d.layers);
  t.heads = f.positive_int("num_attention_heads", d.heads);
  t.kv_heads = f.positive_int("num_key_value_heads", d.kv_heads == 0 ? t.heads : d.kv_heads);
  if (t.heads % t.kv_heads != 0) f.invalid("num_key_value_heads", "a divisor of num_attention_heads");
  const int64_t derived_head_dim = t.hidden_size / t.heads;
  t.head_dim = f.positive_int("head_dim", d.head_dim > 0 ? d.head_dim : derived_head_dim);
  t.max_position_embeddings = f.positive_int64("max_position_embeddings", d.max_positions);
  t.rms_norm_eps = static_cast<float>(f.number("rms_norm_eps", 1e-6));
  t.norm_weight = backend::NormWeight::kScale;
  t.activation = parse_activation(f, "hidden_act", "silu");
  t.attention_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(t.head_dim)));
  t.scale_embeddings = false;
  t.layer_types.assign(static_cast<size_t>(t.layers), LayerKind::kFullAttention);
  t.rope_full = parse_rope(f, "full_attention", "rope_theta", d.theta, true, t.head_dim);
  if (mrope) {
    if (t.rope_full.kind != backend::RopeKind::kDefault) {
      fail(ErrorKind::kUnsupported, "{}: only rope_type \"default\" is supported with M-RoPE", f.where());
    }
    t.rope_full.kind = backend::RopeKind::kMropeInterleaved;
    t.rope_full.mrope_section = parse_mrope_section(f);
    const auto& s = t.rope_full.mrope_section;
    if (s[0] + s[1] + s[2] != t.head_dim / 2) {
      fail(ErrorKind::kInvalidFile, "{}: mrope_section [{}, {}, {}] must add up to head_dim / 2 = {}", f.where(), s[0],
           s[1], s[2], t.head_dim / 2);
    }
  }
  t.rope_sliding = t.rope_full;
  return t;
}

}  // namespace

bool Qwen3MoeConfig::is_sparse(int layer) const {
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return experts > 0 && (layer + 1) % sparse_step == 0;
}

Qwen3VLConfig parse_qwen3vl_config(const weights::Snapshot& snapshot) {
  const std::string file = (snapshot.dir() / "config.json").string();
  const JsonFields top(snapshot.config(), file);
  const Variant variant = variant_of(snapshot);
  const Defaults defaults = defaults_for(variant);
  const bool vl = variant == Variant::kVl || variant == Variant::kVlMoe;

  Qwen3VLConfig c;
  c.architecture = snapshot.architecture();
  const std::optional<JsonFields> text_object = top.object("text_config");
  if (vl && !text_object) top.invalid("text_config", "an object (a vision-language config)");
  const JsonFields& text = text_object ? *text_object : top;
  c.text = parse_text(text, defaults, vl);
  c.attention_bias = text.boolean("attention_bias", false);
  if (variant == Variant::kVlMoe || variant == Variant::kTextMoe) {
    c.moe = parse_moe(text, defaults, variant, c.text.layers);
  }
  // The top level decides for the vision-language models (transformers ties through the outer config); text-only
  // configs have one level. Qwen3-VL's outer default is false; its published small checkpoints say true.
  c.text.tie_word_embeddings = top.boolean("tie_word_embeddings", text.boolean("tie_word_embeddings", false));
  c.stop_ids = read_stop_ids(snapshot);
  if (!vl) return c;

  c.vision = true;
  const std::optional<JsonFields> vision = top.object("vision_config");
  if (!vision) top.invalid("vision_config", "an object (a vision-language config)");
  c.spatial_merge_size = vision->positive_int("spatial_merge_size", 2);
  const nlohmann::json* deepstack = vision->find("deepstack_visual_indexes");
  if (deepstack != nullptr && !deepstack->is_array()) vision->invalid("deepstack_visual_indexes", "a list of integers");
  c.deepstack_layers = deepstack != nullptr ? static_cast<int>(deepstack->size()) : 3;
  if (c.deepstack_layers > c.text.layers) {
    vision->invalid("deepstack_visual_indexes", "no more entries than the text model has layers");
  }
  c.vision_out_hidden = vision->positive_int64("out_hidden_size", c.text.hidden_size);
  if (c.vision_out_hidden != c.text.hidden_size) {
    vision->invalid("out_hidden_size", "the text hidden_size (" + std::to_string(c.text.hidden_size) + ")");
  }
  c.image_token_id = static_cast<int32_t>(top.positive_int64("image_token_id", kDefaultImageToken));
  c.video_token_id = static_cast<int32_t>(top.positive_int64("video_token_id", kDefaultVideoToken));
  c.vision_start_token_id = static_cast<int32_t>(top.positive_int64("vision_start_token_id", kDefaultVisionStart));
  c.vision_end_token_id = static_cast<int32_t>(top.positive_int64("vision_end_token_id", kDefaultVisionEnd));
  return c;
}

}  // namespace loom::model
