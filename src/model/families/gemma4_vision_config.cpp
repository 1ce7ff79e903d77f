#include "model/families/gemma4_vision_config.h"

#include <cmath>
#include <optional>
#include <string>

#include "core/error.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

constexpr int64_t kDefaultTextHidden = 2304;  // Gemma4TextConfig

// rope_parameters {"rope_type": "axial" | "default", "rope_theta": θ}, or a legacy top-level rope_theta.
double parse_rope_theta(const JsonFields& f, double fallback) {
  double theta = f.number("rope_theta", fallback);
  if (const std::optional<JsonFields> rope = f.object("rope_parameters")) {
    const std::string type = rope->string("rope_type", "axial");
    if (type != "axial" && type != "default") {
      fail(ErrorKind::kUnsupported,
           "{}: rope_type \"{}\" is not supported for the Gemma 4 vision tower (supported: axial)", rope->where(),
           type);
    }
    theta = rope->number("rope_theta", theta);
    if (!(theta > 0) || !std::isfinite(theta)) rope->invalid("rope_theta", "a positive number");
  }
  if (!(theta > 0) || !std::isfinite(theta)) f.invalid("rope_theta", "a positive number");
  return theta;
}

}  // namespace

Gemma4VisionConfig parse_gemma4_vision_config(const JsonFields& f, int64_t text_hidden_size) {
  if (f.boolean("attention_bias", false)) {
    fail(ErrorKind::kUnsupported, "{}: attention_bias is not supported for the Gemma 4 vision tower", f.where());
  }
  Gemma4VisionConfig c;
  c.hidden_size = f.positive_int64("hidden_size", c.hidden_size);
  c.intermediate_size = f.positive_int64("intermediate_size", c.intermediate_size);
  c.layers = f.positive_int("num_hidden_layers", c.layers);
  c.heads = f.positive_int("num_attention_heads", c.heads);
  c.kv_heads = f.positive_int("num_key_value_heads", c.kv_heads);
  c.head_dim = f.positive_int("head_dim", c.head_dim);
  if (c.heads % c.kv_heads != 0) f.invalid("num_key_value_heads", "a divisor of num_attention_heads");
  // The 2D RoPE rotates each half of the head (x, then y) by rotate-half pairs.
  if (c.head_dim % 4 != 0) f.invalid("head_dim", "a multiple of 4 (two rotate-half RoPE halves)");
  const double eps = f.number("rms_norm_eps", c.rms_norm_eps);
  if (!(eps > 0) || !std::isfinite(eps)) f.invalid("rms_norm_eps", "a positive number");
  c.rms_norm_eps = static_cast<float>(eps);
  c.activation =
      parse_activation(f, f.has("hidden_activation") ? "hidden_activation" : "hidden_act", "gelu_pytorch_tanh");
  c.patch_size = f.positive_int("patch_size", c.patch_size);
  c.pooling_kernel_size = f.positive_int("pooling_kernel_size", c.pooling_kernel_size);
  c.position_embedding_size = f.positive_int64("position_embedding_size", c.position_embedding_size);
  c.use_clipped_linears = f.boolean("use_clipped_linears", c.use_clipped_linears);
  c.standardize = f.boolean("standardize", c.standardize);
  c.rope_theta = parse_rope_theta(f, c.rope_theta);
  if (text_hidden_size <= 0) fail(ErrorKind::kInvalidFile, "{}: text hidden_size must be positive", f.where());
  c.text_hidden_size = text_hidden_size;
  return c;
}

Gemma4VisionConfig parse_gemma4_vision_config(const weights::Snapshot& snapshot) {
  const std::string file = (snapshot.dir() / "config.json").string();
  const JsonFields top(snapshot.config(), file);
  const std::optional<JsonFields> vision = top.object("vision_config");
  if (!vision) fail(ErrorKind::kInvalidFile, "{}: missing field \"vision_config\" (a Gemma 4 vision tower)", file);
  int64_t text_hidden = kDefaultTextHidden;
  if (const std::optional<JsonFields> text = top.object("text_config")) {
    text_hidden = text->positive_int64("hidden_size", kDefaultTextHidden);
  }
  return parse_gemma4_vision_config(*vision, text_hidden);
}

}  // namespace loom::model
