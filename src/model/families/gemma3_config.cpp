#include "model/families/gemma3_config.h"

#include <cmath>

#include "core/error.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

// Gemma3TextConfig defaults (transformers 5.17).
constexpr int64_t kDefaultVocab = 262'208;
constexpr int64_t kDefaultHidden = 2304;
constexpr int64_t kDefaultIntermediate = 9216;
constexpr int64_t kDefaultLayers = 26;
constexpr int64_t kDefaultHeads = 8;
constexpr int64_t kDefaultKvHeads = 4;
constexpr int64_t kDefaultHeadDim = 256;
constexpr int64_t kDefaultMaxPositions = 131'072;
constexpr double kDefaultQueryPreAttnScalar = 256;
constexpr int64_t kDefaultSlidingWindow = 4096;
constexpr int64_t kDefaultSlidingPattern = 6;
constexpr double kDefaultGlobalTheta = 1'000'000.0;
constexpr double kDefaultLocalTheta = 10'000.0;
constexpr double kDefaultRmsEps = 1e-6;
// SiglipVisionConfig defaults.
constexpr int64_t kDefaultVisionHidden = 768;
constexpr int64_t kDefaultVisionIntermediate = 3072;
constexpr int64_t kDefaultVisionLayers = 12;
constexpr int64_t kDefaultVisionHeads = 12;
constexpr int64_t kDefaultImageSize = 224;
constexpr int64_t kDefaultPatchSize = 16;
// Gemma3Config defaults.
constexpr int64_t kDefaultMmTokensPerImage = 256;
constexpr int64_t kDefaultBoi = 255'999;
constexpr int64_t kDefaultEoi = 256'000;
constexpr int64_t kDefaultImageToken = 262'144;

float softcap(const JsonFields& f, std::string_view key) {
  const double v = f.number(key, 0.0);
  if (v < 0 || !std::isfinite(v)) f.invalid(key, "null or a positive number");
  return static_cast<float>(v);
}

TextConfig parse_text(const JsonFields& f) {
  if (f.boolean("use_bidirectional_attention", false)) {
    fail(ErrorKind::kUnsupported, "{}: use_bidirectional_attention (an embedding model) is not supported", f.where());
  }
  if (f.boolean("attention_bias", false)) {
    fail(ErrorKind::kUnsupported, "{}: attention_bias is not supported for Gemma 3", f.where());
  }
  TextConfig t;
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
  t.norm_weight = backend::NormWeight::kOnePlus;  // Gemma stores norm weights as offsets from 1
  // transformers reads hidden_activation; very old configs only have hidden_act.
  t.activation =
      parse_activation(f, f.has("hidden_activation") ? "hidden_activation" : "hidden_act", "gelu_pytorch_tanh");
  const double scalar = f.number("query_pre_attn_scalar", kDefaultQueryPreAttnScalar);
  if (!(scalar > 0)) f.invalid("query_pre_attn_scalar", "a positive number");
  t.attention_scale = static_cast<float>(1.0 / std::sqrt(scalar));
  t.sliding_window = f.positive_int64("sliding_window", kDefaultSlidingWindow);
  t.attn_logit_softcap = softcap(f, "attn_logit_softcapping");
  t.final_logit_softcap = softcap(f, "final_logit_softcapping");
  t.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  t.scale_embeddings = true;
  // transformers 5 writes both spellings of the pattern; 4.x wrote sliding_window_pattern.
  const int64_t pattern =
      f.integer("sliding_window_pattern", f.integer("_sliding_window_pattern", kDefaultSlidingPattern));
  t.layer_types = parse_layer_types(f, t.layers, pattern);
  t.rope_full = parse_rope(f, "full_attention", "rope_theta", kDefaultGlobalTheta, true, t.head_dim);
  t.rope_sliding = parse_rope(f, "sliding_attention", "rope_local_base_freq", kDefaultLocalTheta, false, t.head_dim);
  return t;
}

VisionConfig parse_vision(const JsonFields& f) {
  // vision_use_head is ignored: Gemma 3 reads the last hidden state, never the pooling head.
  VisionConfig v;
  v.hidden_size = f.positive_int64("hidden_size", kDefaultVisionHidden);
  v.intermediate_size = f.positive_int64("intermediate_size", kDefaultVisionIntermediate);
  v.layers = f.positive_int("num_hidden_layers", kDefaultVisionLayers);
  v.heads = f.positive_int("num_attention_heads", kDefaultVisionHeads);
  v.channels = f.positive_int("num_channels", 3);
  v.image_size = f.positive_int64("image_size", kDefaultImageSize);
  v.patch_size = f.positive_int("patch_size", kDefaultPatchSize);
  v.layer_norm_eps = static_cast<float>(f.number("layer_norm_eps", kDefaultRmsEps));
  v.activation = parse_activation(f, "hidden_act", "gelu_pytorch_tanh");
  if (v.hidden_size % v.heads != 0) f.invalid("num_attention_heads", "a divisor of hidden_size");
  if (v.image_size % v.patch_size != 0) f.invalid("patch_size", "a divisor of image_size");
  return v;
}

}  // namespace

Gemma3Config parse_gemma3_config(const weights::Snapshot& snapshot) {
  const std::string file = (snapshot.dir() / "config.json").string();
  const JsonFields top(snapshot.config(), file);
  Gemma3Config c;
  c.architecture = snapshot.architecture();
  const std::optional<JsonFields> text = top.object("text_config");
  c.text = parse_text(text ? *text : top);
  c.stop_ids = read_stop_ids(snapshot);

  const std::optional<JsonFields> vision = top.object("vision_config");
  if (!vision) return c;  // text-only
  c.vision = parse_vision(*vision);
  c.mm_tokens_per_image = top.positive_int64("mm_tokens_per_image", kDefaultMmTokensPerImage);
  c.image_token_id =
      static_cast<int32_t>(top.positive_int64("image_token_index", top.integer("image_token_id", kDefaultImageToken)));
  c.boi_token_id = static_cast<int32_t>(top.positive_int64("boi_token_index", kDefaultBoi));
  c.eoi_token_id = static_cast<int32_t>(top.positive_int64("eoi_token_index", kDefaultEoi));
  // The projector pools the patch grid to a square of mm_tokens_per_image cells.
  const int64_t side = c.vision->patches_per_side();
  const auto tokens_side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(c.mm_tokens_per_image))));
  if (tokens_side * tokens_side != c.mm_tokens_per_image || side % tokens_side != 0) {
    fail(ErrorKind::kInvalidFile,
         "{}: field \"mm_tokens_per_image\" ({}) must be a square whose side divides the {}×{} patch grid", file,
         c.mm_tokens_per_image, side, side);
  }
  return c;
}

}  // namespace loom::model
