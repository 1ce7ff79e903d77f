#include "model/families/gemma4_config.h"

#include <cmath>

#include "core/error.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

// Gemma4TextConfig defaults (transformers 5.17).
constexpr int64_t kDefaultVocab = 262'144;
constexpr int64_t kDefaultHidden = 2304;
constexpr int64_t kDefaultIntermediate = 9216;
constexpr int64_t kDefaultLayers = 30;
constexpr int64_t kDefaultHeads = 8;
constexpr int64_t kDefaultKvHeads = 4;
constexpr int64_t kDefaultHeadDim = 256;
constexpr int64_t kDefaultGlobalHeadDim = 512;
constexpr int64_t kDefaultMaxPositions = 131'072;
constexpr int64_t kDefaultSlidingWindow = 512;
constexpr int64_t kDefaultSlidingPattern = 6;
constexpr int64_t kDefaultPleDim = 256;
constexpr double kDefaultRmsEps = 1e-6;
constexpr double kDefaultSlidingTheta = 10'000.0;
constexpr double kDefaultFullTheta = 1'000'000.0;
constexpr double kDefaultPartialRotary = 0.25;
// Gemma4Config defaults.
constexpr int64_t kDefaultImageToken = 258'880;
constexpr int64_t kDefaultVideoToken = 258'884;
constexpr int64_t kDefaultAudioToken = 258'881;
constexpr int64_t kDefaultBoi = 255'999;
constexpr int64_t kDefaultEoi = 258'882;

int32_t token_id(const JsonFields& f, std::string_view key, int64_t fallback) {
  const int64_t v = f.integer(key, fallback);
  if (v < 0 || v > (int64_t{1} << 30)) f.invalid(key, "a token id");
  return static_cast<int32_t>(v);
}

// A field transformers tests for truthiness: absent → the default, null or 0 → 0.
int64_t optional_size(const JsonFields& f, const json& raw, std::string_view key, int64_t fallback) {
  const auto it = raw.find(key);
  if (it == raw.end()) return fallback;
  if (it->is_null()) return 0;
  const int64_t v = f.integer(key, fallback);
  if (v < 0 || v > (int64_t{1} << 30)) f.invalid(key, "null or a non-negative integer");
  return v;
}

// The rope dict of one layer kind with transformers' Gemma 4 default when rope_parameters is absent.
backend::RopeSpec parse_gemma4_rope(const JsonFields& f, std::string_view kind, int head_dim) {
  if (!f.has("rope_parameters")) {
    backend::RopeSpec spec{.head_dim = head_dim};
    if (kind == "full_attention") {
      spec.kind = backend::RopeKind::kProportional;
      spec.theta = kDefaultFullTheta;
      spec.partial_rotary_factor = kDefaultPartialRotary;
    } else {
      spec.theta = kDefaultSlidingTheta;
    }
    return spec;
  }
  const double default_theta = kind == "full_attention" ? kDefaultFullTheta : kDefaultSlidingTheta;
  return parse_rope(f, kind, "rope_theta", default_theta, false, head_dim);
}

// Per-layer head_dim and KV heads, the way Gemma4TextConfig.__post_init__ derives per_layer_config: written out
// when config.json has it, else full layers take global_head_dim and (with attention_k_eq_v only)
// num_global_key_value_heads.
void parse_layer_shapes(const JsonFields& f, Gemma4TextConfig& c) {
  const TextConfig& t = c.base;
  const auto layers = static_cast<size_t>(t.layers);
  c.layer_head_dim.assign(layers, t.head_dim);
  c.layer_kv_heads.assign(layers, t.kv_heads);
  if (const json* overrides = f.find("per_layer_config")) {
    if (!overrides->is_object()) f.invalid("per_layer_config", "an object of per-layer overrides");
    for (const auto& [key, value] : overrides->items()) {
      const std::string where = f.where() + ".per_layer_config";
      size_t index = layers;
      if (!key.empty() && key.find_first_not_of("0123456789") == std::string::npos && key.size() < 9) {
        index = std::stoul(key);
      }
      if (index >= layers || !value.is_object()) {
        fail(ErrorKind::kInvalidFile, "{}: entry \"{}\" must be a layer index below {} mapping to an object", where,
             key, layers);
      }
      const JsonFields entry(value, where + "." + key);
      c.layer_head_dim[index] = entry.positive_int("head_dim", t.head_dim);
      c.layer_kv_heads[index] = entry.positive_int("num_key_value_heads", t.kv_heads);
      if (t.heads % c.layer_kv_heads[index] != 0)
        entry.invalid("num_key_value_heads", "a divisor of num_attention_heads");
    }
  } else {
    const int global_head_dim = f.positive_int("global_head_dim", kDefaultGlobalHeadDim);
    int global_kv_heads = t.kv_heads;
    if (c.k_eq_v && f.has("num_global_key_value_heads")) {
      global_kv_heads = f.positive_int("num_global_key_value_heads", t.kv_heads);
      if (t.heads % global_kv_heads != 0) f.invalid("num_global_key_value_heads", "a divisor of num_attention_heads");
    }
    for (size_t i = 0; i < layers; ++i) {
      if (t.layer_types[i] != LayerKind::kFullAttention) continue;
      c.layer_head_dim[i] = global_head_dim;
      c.layer_kv_heads[i] = global_kv_heads;
    }
  }
  // One RoPE table per kind: every full layer must share a head_dim (and likewise every sliding layer).
  c.global_head_dim = 0;
  for (size_t i = 0; i < layers; ++i) {
    const bool full = t.layer_types[i] == LayerKind::kFullAttention;
    if (full && c.global_head_dim == 0) {
      c.global_head_dim = c.layer_head_dim[i];
      c.global_kv_heads = c.layer_kv_heads[i];
    }
    if (c.layer_head_dim[i] != (full ? c.layer_head_dim[t.layers - 1] : t.head_dim)) {
      fail(ErrorKind::kUnsupported, "{}: layer {} has head_dim {}, unlike the other {} layers", f.where(), i,
           c.layer_head_dim[i], full ? "full_attention" : "sliding_attention");
    }
  }
}

}  // namespace

Gemma4TextConfig parse_gemma4_text_config(const json& raw, const std::string& where) {
  const JsonFields f(raw, where);
  if (f.has("use_bidirectional_attention")) {
    const json& mode = *f.find("use_bidirectional_attention");
    if (mode == "all") {
      fail(ErrorKind::kUnsupported, "{}: use_bidirectional_attention \"all\" (an embedding model) is not supported",
           where);
    }
    if (mode != "vision" && mode != false) f.invalid("use_bidirectional_attention", "null or \"vision\"");
  }
  if (f.boolean("attention_bias", false)) {
    fail(ErrorKind::kUnsupported, "{}: attention_bias is not supported for Gemma 4", where);
  }
  Gemma4TextConfig c;
  TextConfig& t = c.base;
  t.vocab_size = f.positive_int64("vocab_size", kDefaultVocab);
  t.hidden_size = f.positive_int64("hidden_size", kDefaultHidden);
  t.intermediate_size = f.positive_int64("intermediate_size", kDefaultIntermediate);
  t.layers = f.positive_int("num_hidden_layers", kDefaultLayers);
  t.heads = f.positive_int("num_attention_heads", kDefaultHeads);
  t.kv_heads = f.positive_int("num_key_value_heads", kDefaultKvHeads);
  t.head_dim = f.positive_int("head_dim", kDefaultHeadDim);
  if (t.heads % t.kv_heads != 0) f.invalid("num_key_value_heads", "a divisor of num_attention_heads");
  t.max_position_embeddings = f.positive_int64("max_position_embeddings", kDefaultMaxPositions);
  t.rms_norm_eps = static_cast<float>(f.number("rms_norm_eps", kDefaultRmsEps));
  if (!(t.rms_norm_eps >= 0)) f.invalid("rms_norm_eps", "a non-negative number");
  t.norm_weight = backend::NormWeight::kScale;  // Gemma 4 norms multiply by w itself (weights initialised to 1)
  t.activation = parse_activation(f, "hidden_activation", "gelu_pytorch_tanh");
  t.attention_scale = 1.0f;  // q/k norms replace the 1/sqrt(d) scaling
  t.sliding_window = f.positive_int64("sliding_window", kDefaultSlidingWindow);
  const double softcap = f.number("final_logit_softcapping", 0.0);
  if (softcap < 0 || !std::isfinite(softcap)) f.invalid("final_logit_softcapping", "null or a positive number");
  t.final_logit_softcap = static_cast<float>(softcap);
  t.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  t.scale_embeddings = true;
  t.layer_types = parse_layer_types(f, t.layers, kDefaultSlidingPattern);
  // transformers forces the last layer to full attention whatever layer_types says.
  t.layer_types.back() = LayerKind::kFullAttention;

  c.k_eq_v = f.boolean("attention_k_eq_v", false);
  parse_layer_shapes(f, c);
  t.rope_sliding = parse_gemma4_rope(f, "sliding_attention", t.head_dim);
  t.rope_full = parse_gemma4_rope(f, "full_attention", c.global_head_dim);

  c.ple_dim = optional_size(f, raw, "hidden_size_per_layer_input", kDefaultPleDim);
  c.ple_vocab = c.ple_dim > 0 ? f.positive_int64("vocab_size_per_layer_input", kDefaultVocab) : 0;
  const int64_t shared = f.integer("num_kv_shared_layers", 0);
  if (shared < 0 || shared >= t.layers) f.invalid("num_kv_shared_layers", "a count below num_hidden_layers");
  c.kv_shared_layers = static_cast<int>(shared);
  c.double_wide_mlp = f.boolean("use_double_wide_mlp", false);
  c.bidirectional_vision = f.has("use_bidirectional_attention") && *f.find("use_bidirectional_attention") == "vision";
  c.moe = f.boolean("enable_moe_block", false);
  if (c.moe) {
    c.experts = f.positive_int("num_experts", 0);
    c.top_k_experts = f.positive_int("top_k_experts", 0);
    c.moe_intermediate_size = f.positive_int64("moe_intermediate_size", 0);
    if (c.top_k_experts > c.experts) f.invalid("top_k_experts", "at most num_experts");
  }
  c.pad_token_id = token_id(f, "pad_token_id", 0);
  return c;
}

std::vector<Gemma4LayerPlan> plan_gemma4_layers(const Gemma4TextConfig& config) {
  const TextConfig& t = config.base;
  const int first_shared = t.layers - config.kv_shared_layers;
  std::vector<Gemma4LayerPlan> plans;
  int next_cache_layer = 0;
  for (int i = 0; i < t.layers; ++i) {
    Gemma4LayerPlan p;
    p.kind = t.layer_types[static_cast<size_t>(i)];
    const bool full = p.kind == LayerKind::kFullAttention;
    p.head_dim = config.layer_head_dim[static_cast<size_t>(i)];
    p.kv_heads = config.layer_kv_heads[static_cast<size_t>(i)];
    p.k_eq_v = full && config.k_eq_v;
    p.stores_kv = i < first_shared;
    // The double-wide MLP sits on the shared layers only (and never when nothing is shared).
    const bool wide = config.double_wide_mlp && i >= first_shared && first_shared > 0 && config.kv_shared_layers > 0;
    p.intermediate_size = t.intermediate_size * (wide ? 2 : 1);
    if (p.stores_kv) {
      p.cache_layer = next_cache_layer++;
    } else {
      int source = -1;
      for (int j = first_shared - 1; j >= 0; --j) {
        if (plans[static_cast<size_t>(j)].kind == p.kind) {
          source = j;
          break;
        }
      }
      if (source < 0) {
        fail(ErrorKind::kInvalidFile,
             "field \"num_kv_shared_layers\" ({}) leaves layer {} ({}) no earlier layer of its type to share K/V with",
             config.kv_shared_layers, i, full ? "full_attention" : "sliding_attention");
      }
      p.cache_layer = plans[static_cast<size_t>(source)].cache_layer;
    }
    plans.push_back(p);
  }
  return plans;
}

std::vector<backend::KvLayerShape> gemma4_kv_layers(const std::vector<Gemma4LayerPlan>& plans) {
  std::vector<backend::KvLayerShape> kv;
  for (const Gemma4LayerPlan& p : plans) {
    if (p.stores_kv) kv.push_back({.kv_heads = p.kv_heads, .head_dim = p.head_dim});
  }
  return kv;
}

Gemma4Config parse_gemma4_config(const weights::Snapshot& snapshot) {
  const std::string file = (snapshot.dir() / "config.json").string();
  const JsonFields top(snapshot.config(), file);
  Gemma4Config c;
  c.architecture = snapshot.architecture();
  const bool nested = snapshot.config().contains("text_config") && snapshot.config()["text_config"].is_object();
  c.text = nested ? parse_gemma4_text_config(snapshot.config()["text_config"], file + ": text_config")
                  : parse_gemma4_text_config(snapshot.config(), file);
  try {
    (void)plan_gemma4_layers(c.text);
  } catch (const Error& e) {
    fail(ErrorKind::kInvalidFile, "{}: {}", file, e.what());
  }
  c.stop_ids = read_stop_ids(snapshot);
  c.has_vision = snapshot.vision_config() != nullptr;
  c.image_token_id = token_id(top, "image_token_id", kDefaultImageToken);
  c.video_token_id = token_id(top, "video_token_id", kDefaultVideoToken);
  c.audio_token_id = token_id(top, "audio_token_id", kDefaultAudioToken);
  c.boi_token_id = token_id(top, "boi_token_id", kDefaultBoi);
  c.eoi_token_id = token_id(top, "eoi_token_id", kDefaultEoi);
  return c;
}

}  // namespace loom::model
