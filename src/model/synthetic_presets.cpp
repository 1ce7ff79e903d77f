// The synthetic model presets (synthetic.h) and the --format names. The numbers are those of the published
// config.json files of google/gemma-3-{270m,1b,4b,12b}-it; fields those files leave out take transformers' defaults
// in parse_gemma3_config, exactly as they do for the real checkpoints.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <optional>

#include "core/error.h"
#include "model/synthetic.h"
#include "weights/quant_config.h"
#include "weights/quantize_policy.h"

namespace loom::model {
namespace {

using nlohmann::json;

json text_only(int64_t hidden, int64_t intermediate, int layers, int heads, int kv_heads, int64_t window) {
  return {
      {"architectures", json::array({"Gemma3ForCausalLM"})},
      {"model_type", "gemma3_text"},
      {"hidden_size", hidden},
      {"intermediate_size", intermediate},
      {"num_hidden_layers", layers},
      {"num_attention_heads", heads},
      {"num_key_value_heads", kv_heads},
      {"head_dim", 256},
      {"query_pre_attn_scalar", 256},
      {"sliding_window", window},
      {"sliding_window_pattern", 6},
      {"max_position_embeddings", 32768},
      {"rope_theta", 1000000.0},
      {"rope_local_base_freq", 10000.0},
      {"rope_scaling", nullptr},
      {"rms_norm_eps", 1e-6},
      {"hidden_activation", "gelu_pytorch_tanh"},
      {"vocab_size", 262144},
      {"eos_token_id", json::array({1, 106})},
      {"torch_dtype", "bfloat16"},
  };
}

// Gemma3ForConditionalGeneration with the 896 px SigLIP tower of the 4B, 12B and 27B checkpoints.
json multimodal(int64_t hidden, int64_t intermediate, int layers, int heads, int kv_heads) {
  return {
      {"architectures", json::array({"Gemma3ForConditionalGeneration"})},
      {"model_type", "gemma3"},
      {"boi_token_index", 255999},
      {"eoi_token_index", 256000},
      {"image_token_index", 262144},
      {"mm_tokens_per_image", 256},
      {"eos_token_id", json::array({1, 106})},
      {"torch_dtype", "bfloat16"},
      {"text_config",
       {{"model_type", "gemma3_text"},
        {"hidden_size", hidden},
        {"intermediate_size", intermediate},
        {"num_hidden_layers", layers},
        {"num_attention_heads", heads},
        {"num_key_value_heads", kv_heads},
        {"head_dim", 256},
        {"query_pre_attn_scalar", 256},
        {"sliding_window", 1024},
        {"rope_scaling", {{"factor", 8.0}, {"rope_type", "linear"}}},
        {"vocab_size", 262208}}},
      {"vision_config",
       {{"model_type", "siglip_vision_model"},
        {"hidden_size", 1152},
        {"intermediate_size", 4304},
        {"num_hidden_layers", 27},
        {"num_attention_heads", 16},
        {"image_size", 896},
        {"patch_size", 14},
        {"vision_use_head", false}}},
  };
}

// A two-layer VLM small enough for unit tests: every matrix width divides by 128 so every affine group size applies.
json tiny() {
  return {
      {"architectures", json::array({"Gemma3ForConditionalGeneration"})},
      {"model_type", "gemma3"},
      {"boi_token_index", 1021},
      {"eoi_token_index", 1022},
      {"image_token_index", 1023},
      {"mm_tokens_per_image", 4},
      {"eos_token_id", json::array({1})},
      {"text_config",
       {{"model_type", "gemma3_text"},
        {"hidden_size", 128},
        {"intermediate_size", 256},
        {"num_hidden_layers", 2},
        {"num_attention_heads", 4},
        {"num_key_value_heads", 2},
        {"head_dim", 32},
        {"query_pre_attn_scalar", 32},
        {"sliding_window", 16},
        {"sliding_window_pattern", 2},
        {"max_position_embeddings", 4096},
        {"vocab_size", 1024}}},
      {"vision_config",
       {{"model_type", "siglip_vision_model"},
        {"hidden_size", 64},
        {"intermediate_size", 128},
        {"num_hidden_layers", 1},
        {"num_attention_heads", 2},
        {"image_size", 32},
        {"patch_size", 8},
        {"vision_use_head", false}}},
  };
}

json preset_config(std::string_view preset) {
  if (preset == "gemma3-270m") return text_only(640, 2048, 18, 4, 1, 512);
  if (preset == "gemma3-1b") return text_only(1152, 6912, 26, 4, 1, 512);
  if (preset == "gemma3-4b") return multimodal(2560, 10240, 34, 8, 4);
  if (preset == "gemma3-12b") return multimodal(3840, 15360, 48, 16, 8);
  if (preset == "tiny") return tiny();
  return nullptr;
}

constexpr const char* kFormats =
    "f32, f16, bf16, affine-B or affine-B/gG (B 2-6 or 8, G 32, 64 or 128), mxfp4, mxfp8, nvfp4";

std::optional<int> parse_int(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::vector<std::string> synthetic_presets() {
  return {"gemma3-12b", "gemma3-1b", "gemma3-270m", "gemma3-4b", "tiny"};
}

json synthetic_config(std::string_view preset) {
  json config = preset_config(preset);
  if (config.is_null()) {
    fail(ErrorKind::kInvalidRequest, "unknown synthetic model '{}'; known: {}", preset,
         fmt::join(synthetic_presets(), ", "));
  }
  return config;
}

SyntheticFormat parse_synthetic_format(std::string_view name) {
  if (name == "f32") return {.float_dtype = DType::kF32, .quant = {}};
  if (name == "f16") return {.float_dtype = DType::kF16, .quant = {}};
  if (name == "bf16") return {.float_dtype = DType::kBF16, .quant = {}};
  const auto bad = [&]() -> SyntheticFormat {
    fail(ErrorKind::kInvalidRequest, "unknown weight format '{}'; use one of {}", name, kFormats);
  };
  std::string_view mode = name;
  std::optional<int> bits, group;
  if (name.starts_with("affine-")) {
    mode = "affine";
    std::string_view rest = name.substr(7);
    const size_t slash = rest.find("/g");
    bits = parse_int(rest.substr(0, slash));
    if (slash != std::string_view::npos) {
      group = parse_int(rest.substr(slash + 2));
      if (!group) return bad();
    }
    if (!bits) return bad();
  } else if (name != "mxfp4" && name != "mxfp8" && name != "nvfp4") {
    return bad();
  }
  try {
    return {.float_dtype = DType::kBF16, .quant = weights::resolve_quant_spec(mode, bits, group)};
  } catch (const Error& e) {
    fail(ErrorKind::kInvalidRequest, "weight format '{}': {}", name, e.what());
  }
}

}  // namespace loom::model
