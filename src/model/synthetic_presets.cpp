// The synthetic model presets (synthetic.h) and the --format names. The Gemma 3 numbers are those of the published
// config.json files of google/gemma-3-{270m,1b,4b,12b}-it; the Gemma 4 numbers those of google/gemma-4-{E4B,31B}-it
// (see gemma4() below for each field's source). Fields those files leave out take transformers' defaults in the
// family's config parser, exactly as they do for the real checkpoints.

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

// Gemma4ForConditionalGeneration (text + vision; the E4B audio tower is not built: loom runs no audio). Every layer
// pattern is 5 sliding + 1 full. Text fields, from the published text_config of google/gemma-4-E4B-it and
// google/gemma-4-31B-it: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// num_key_value_heads, num_global_key_value_heads (31B), head_dim 256, global_head_dim 512, sliding_window,
// num_kv_shared_layers, hidden_size_per_layer_input (E4B), attention_k_eq_v, use_double_wide_mlp false,
// final_logit_softcapping 30, vocab 262144, rope_parameters (sliding: default θ 1e4; full: proportional, partial
// rotary 0.25, θ 1e6); ids from the published top-level config (and transformers' Gemma4Config defaults).
struct Gemma4Shape {
  int64_t hidden, intermediate;
  int layers, heads, kv_heads, global_kv_heads;  // global_kv_heads 0: full layers use kv_heads
  int64_t window, max_positions;
  int kv_shared_layers;
  int64_t ple_dim;  // 0: no per-layer embeddings
  bool k_eq_v;
  bool bidirectional_vision;
  // Vision tower: the E-models' 768-wide, 16-layer tower with clipped linears (models.md §2.1); the 26B/31B
  // 1152-wide, 27-layer tower with standardize (models.md §2.1), whose MLP width 4304 and 16 heads of 72 are the
  // SigLIP-So400m shapes it shares.
  int64_t vision_hidden, vision_intermediate;
  int vision_layers, vision_heads, vision_head_dim;
  bool clipped_linears, standardize;
};

json gemma4(const Gemma4Shape& s) {
  json layer_types = json::array();
  for (int i = 0; i < s.layers; ++i) layer_types.push_back(i % 6 == 5 ? "full_attention" : "sliding_attention");
  json text = {
      {"model_type", "gemma4_text"},
      {"hidden_size", s.hidden},
      {"intermediate_size", s.intermediate},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"head_dim", 256},
      {"global_head_dim", 512},
      {"sliding_window", s.window},
      {"layer_types", layer_types},
      {"max_position_embeddings", s.max_positions},
      {"num_kv_shared_layers", s.kv_shared_layers},
      {"hidden_size_per_layer_input", s.ple_dim},
      {"vocab_size_per_layer_input", 262144},
      {"attention_k_eq_v", s.k_eq_v},
      {"use_double_wide_mlp", false},
      {"enable_moe_block", false},
      {"final_logit_softcapping", 30.0},
      {"hidden_activation", "gelu_pytorch_tanh"},
      {"rms_norm_eps", 1e-6},
      {"vocab_size", 262144},
      {"tie_word_embeddings", true},
      {"pad_token_id", 0},
      {"bos_token_id", 2},
      {"eos_token_id", 1},
      {"rope_parameters",
       {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
        {"full_attention", {{"rope_type", "proportional"}, {"partial_rotary_factor", 0.25}, {"rope_theta", 1e6}}}}},
      {"use_bidirectional_attention", s.bidirectional_vision ? json("vision") : json(nullptr)},
  };
  if (s.global_kv_heads > 0) text["num_global_key_value_heads"] = s.global_kv_heads;
  return {
      {"architectures", json::array({"Gemma4ForConditionalGeneration"})},
      {"model_type", "gemma4"},
      {"boi_token_id", 255999},
      {"eoi_token_id", 258882},
      {"image_token_id", 258880},
      {"video_token_id", 258884},
      {"audio_token_id", 258881},
      {"boa_token_id", 256000},
      {"eoa_token_index", 258883},
      {"eos_token_id", json::array({1, 106, 50})},
      {"tie_word_embeddings", true},
      {"torch_dtype", "bfloat16"},
      {"audio_config", nullptr},
      {"text_config", text},
      {"vision_config",
       {{"model_type", "gemma4_vision"},
        {"hidden_size", s.vision_hidden},
        {"intermediate_size", s.vision_intermediate},
        {"num_hidden_layers", s.vision_layers},
        {"num_attention_heads", s.vision_heads},
        {"num_key_value_heads", s.vision_heads},
        {"head_dim", s.vision_head_dim},
        {"hidden_activation", "gelu_pytorch_tanh"},
        {"rms_norm_eps", 1e-6},
        {"patch_size", 16},
        {"pooling_kernel_size", 3},
        {"position_embedding_size", 10240},
        {"use_clipped_linears", s.clipped_linears},
        {"standardize", s.standardize},
        {"rope_parameters", {{"rope_type", "axial"}, {"rope_theta", 100.0}}}}},
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

// A 12-layer Gemma 4 VLM small enough for unit tests that has every tensor kind the E4B and 31B presets have:
// per-layer embeddings, KV sharing over the last 4 layers (a sliding and a full source), attention_k_eq_v with its own
// full-layer KV heads, a clipped-linear vision tower with standardize. Its own token ids fit its 1024-token vocabulary.
json tiny_gemma4() {
  json c = gemma4({.hidden = 128,
                   .intermediate = 256,
                   .layers = 12,
                   .heads = 4,
                   .kv_heads = 2,
                   .global_kv_heads = 1,
                   .window = 16,
                   .max_positions = 4096,
                   .kv_shared_layers = 4,
                   .ple_dim = 16,
                   .k_eq_v = true,
                   .bidirectional_vision = true,
                   .vision_hidden = 64,
                   .vision_intermediate = 128,
                   .vision_layers = 1,
                   .vision_heads = 2,
                   .vision_head_dim = 32,
                   .clipped_linears = true,
                   .standardize = true});
  json& text = c["text_config"];
  text["head_dim"] = 32;
  text["global_head_dim"] = 64;
  text["vocab_size"] = 1024;
  text["vocab_size_per_layer_input"] = 1024;
  c["boi_token_id"] = 1016;
  c["eoi_token_id"] = 1017;
  c["image_token_id"] = 1018;
  c["video_token_id"] = 1019;
  c["audio_token_id"] = 1020;
  c["boa_token_id"] = 1021;
  c["eoa_token_index"] = 1022;
  c["vision_config"]["position_embedding_size"] = 128;
  return c;
}

json preset_config(std::string_view preset) {
  if (preset == "gemma3-270m") return text_only(640, 2048, 18, 4, 1, 512);
  if (preset == "gemma3-1b") return text_only(1152, 6912, 26, 4, 1, 512);
  if (preset == "gemma3-4b") return multimodal(2560, 10240, 34, 8, 4);
  if (preset == "gemma3-12b") return multimodal(3840, 15360, 48, 16, 8);
  if (preset == "gemma4-e4b") {
    // google/gemma-4-E4B-it: 42 layers of 2560, MLP 10240, 8 heads : 2 KV heads, window 512, the last 18 layers
    // share K/V, 256-wide per-layer embeddings, 128K context.
    return gemma4({.hidden = 2560,
                   .intermediate = 10240,
                   .layers = 42,
                   .heads = 8,
                   .kv_heads = 2,
                   .global_kv_heads = 0,
                   .window = 512,
                   .max_positions = 131072,
                   .kv_shared_layers = 18,
                   .ple_dim = 256,
                   .k_eq_v = false,
                   .bidirectional_vision = false,
                   .vision_hidden = 768,
                   .vision_intermediate = 3072,
                   .vision_layers = 16,
                   .vision_heads = 12,
                   .vision_head_dim = 64,
                   .clipped_linears = true,
                   .standardize = false});
  }
  if (preset == "gemma4-31b") {
    // google/gemma-4-31B-it: 60 layers of 5376, MLP 21504, 32 heads : 16 KV heads (4 on full layers, whose keys are
    // the values), window 1024, no KV sharing or per-layer embeddings, 256K context, bidirectional image runs.
    return gemma4({.hidden = 5376,
                   .intermediate = 21504,
                   .layers = 60,
                   .heads = 32,
                   .kv_heads = 16,
                   .global_kv_heads = 4,
                   .window = 1024,
                   .max_positions = 262144,
                   .kv_shared_layers = 0,
                   .ple_dim = 0,
                   .k_eq_v = true,
                   .bidirectional_vision = true,
                   .vision_hidden = 1152,
                   .vision_intermediate = 4304,
                   .vision_layers = 27,
                   .vision_heads = 16,
                   .vision_head_dim = 72,
                   .clipped_linears = false,
                   .standardize = true});
  }
  if (preset == "tiny") return tiny();
  if (preset == "tiny-gemma4") return tiny_gemma4();
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
  return {"gemma3-12b", "gemma3-1b", "gemma3-270m", "gemma3-4b", "gemma4-31b", "gemma4-e4b", "tiny", "tiny-gemma4"};
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
