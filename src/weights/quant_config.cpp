// GCC 12 reports a false -Wmaybe-uninitialized inside libstdc++'s <regex> at -O2 with sanitizers (the warning points
// into std::function, which is included before <regex>, so it must be silenced before any include).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "weights/quant_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <regex>

#include "core/error.h"
#include "weights/tensor_names.h"

namespace loom::weights {
namespace {

using nlohmann::json;

constexpr int kAffineBits[] = {2, 3, 4, 5, 6, 8};
constexpr int kAffineGroups[] = {32, 64, 128};

// MLX's defaults when a config leaves group_size or bits out (nn.quantize's per-mode defaults).
QuantSpec default_spec(QuantMode mode) {
  switch (mode) {
    case QuantMode::kAffine:
      return {mode, 4, 64};
    case QuantMode::kMxfp4:
      return {mode, 4, 32};
    case QuantMode::kMxfp8:
      return {mode, 8, 32};
    case QuantMode::kNvfp4:
      return {mode, 4, 16};
    case QuantMode::kNone:
      break;
  }
  return {};
}

int read_int(const json& object, const char* key, int fallback, std::string_view where) {
  if (!object.contains(key)) return fallback;
  const json& value = object[key];
  if (!value.is_number_integer()) {
    fail(ErrorKind::kInvalidFile, "{}: \"{}\" must be an integer, got {}", where, key, value.dump());
  }
  return value.get<int>();
}

// A string field, or `fallback` when absent; a present field of another type is an error.
std::string read_string(const json& object, const char* key, const std::string& fallback, std::string_view where) {
  if (!object.contains(key) || object[key].is_null()) return fallback;
  if (!object[key].is_string()) {
    fail(ErrorKind::kInvalidFile, "{}: \"{}\" must be a string, got {}", where, key, object[key].dump());
  }
  return object[key].get<std::string>();
}

// An MLX spec dict: `mode` defaults to affine (even inside an mxfp4 model), group_size/bits to the mode's defaults.
QuantSpec parse_mlx_spec(const json& object, std::string_view where) {
  QuantMode mode = QuantMode::kAffine;
  if (object.contains("mode")) {
    const json& name = object["mode"];
    const auto parsed = name.is_string() ? quant_mode_from_name(name.get<std::string>()) : std::nullopt;
    if (!parsed) {
      fail(ErrorKind::kUnsupported, "{}: quantization mode {} is not one of affine, mxfp4, mxfp8, nvfp4", where,
           name.dump());
    }
    mode = *parsed;
  }
  QuantSpec spec = default_spec(mode);
  spec.bits = read_int(object, "bits", spec.bits, where);
  spec.group_size = read_int(object, "group_size", spec.group_size, where);
  validate_quant_spec(spec, where);
  return spec;
}

QuantConfig parse_mlx(const json& object, std::string_view where) {
  QuantConfig config;
  config.source = QuantConfig::Source::kMlx;
  config.base = parse_mlx_spec(object, where);
  for (const auto& [key, value] : object.items()) {
    if (key == "mode" || key == "bits" || key == "group_size") continue;
    if (value.is_object()) {
      config.overrides[canonical_tensor_name(key)] =
          parse_mlx_spec(value, fmt::format("{} override \"{}\"", where, key));
    } else if (value.is_boolean() && !value.get<bool>()) {
      config.overrides[canonical_tensor_name(key)] = std::nullopt;
    }
    // Other scalars (for example `true`) carry no module spec: the scales-presence rule decides.
  }
  return config;
}

std::vector<std::string> string_list(const json& object, std::initializer_list<const char*> keys,
                                     std::string_view where) {
  std::vector<std::string> out;
  for (const char* key : keys) {
    if (!object.contains(key) || object[key].is_null()) continue;
    const json& list = object[key];
    if (!list.is_array()) fail(ErrorKind::kInvalidFile, "{}: \"{}\" must be a list of module names", where, key);
    for (const json& item : list) {
      if (!item.is_string()) fail(ErrorKind::kInvalidFile, "{}: \"{}\" entries must be strings", where, key);
      out.push_back(item.get<std::string>());
    }
  }
  return out;
}

HfQuantization parse_modelopt(const json& object, std::string_view where) {
  // hf_quant_config.json nests the fields under "quantization"; config.json's quantization_config has them flat.
  const json& fields =
      object.contains("quantization") && object["quantization"].is_object() ? object["quantization"] : object;
  const std::string algo = read_string(fields, "quant_algo", "", where);
  if (algo != "NVFP4") {
    fail(ErrorKind::kUnsupported, "{}: ModelOpt quant_algo \"{}\" is not supported (only NVFP4)", where, algo);
  }
  HfQuantization hf;
  hf.kind = HfQuantKind::kModeloptNvfp4;
  hf.method = "modelopt";
  hf.format = algo;
  hf.bits = 4;
  hf.group_size = read_int(fields, "group_size", 16, where);
  hf.excluded_modules = string_list(fields, {"exclude_modules", "ignore", "modules_to_not_convert"}, where);
  hf.equivalent = QuantSpec{QuantMode::kNvfp4, 4, 16};
  validate_quant_spec({QuantMode::kNvfp4, 4, hf.group_size}, where);
  hf.description = "ModelOpt NVFP4: weight U8 E2M1 pairs, weight_scale E4M3 per 16, weight_scale_2 F32";
  return hf;
}

HfQuantization parse_compressed_tensors(const json& object, std::string_view where) {
  HfQuantization hf;
  hf.method = "compressed-tensors";
  hf.format = read_string(object, "format", "", where);
  const json* weights = nullptr;
  if (object.contains("config_groups") && object["config_groups"].is_object()) {
    for (const auto& [name, group] : object["config_groups"].items()) {
      if (!group.is_object()) continue;
      if (hf.format.empty() || hf.format == "mixed-precision")
        hf.format = read_string(group, "format", hf.format, where);
      if (weights == nullptr && group.contains("weights") && group["weights"].is_object()) weights = &group["weights"];
    }
  }
  if (weights != nullptr) {
    hf.bits = read_int(*weights, "num_bits", 0, where);
    hf.group_size = read_int(*weights, "group_size", 0, where);
  }
  hf.excluded_modules = string_list(object, {"ignore"}, where);
  if (hf.format == "nvfp4-pack-quantized") {
    hf.kind = HfQuantKind::kCompressedNvfp4;
    hf.bits = 4;
    if (hf.group_size == 0) hf.group_size = 16;
    validate_quant_spec({QuantMode::kNvfp4, 4, hf.group_size}, where);
    hf.equivalent = QuantSpec{QuantMode::kNvfp4, 4, 16};
    hf.description = "compressed-tensors NVFP4: weight_packed U8, weight_scale E4M3 per 16, 1/weight_global_scale";
  } else if (hf.format == "mxfp4-pack-quantized") {
    hf.kind = HfQuantKind::kCompressedMxfp4;
    hf.bits = 4;
    if (hf.group_size == 0) hf.group_size = 32;
    validate_quant_spec({QuantMode::kMxfp4, 4, hf.group_size}, where);
    hf.equivalent = QuantSpec{QuantMode::kMxfp4, 4, 32};
    hf.description = "compressed-tensors MXFP4: weight_packed U8, weight_scale E8M0 per 32";
  } else if (hf.format == "pack-quantized") {
    hf.kind = HfQuantKind::kCompressedInt;
    if (hf.bits < 2 || hf.bits > 8) {
      fail(ErrorKind::kInvalidFile, "{}: pack-quantized num_bits {} is outside 2..8", where, hf.bits);
    }
    hf.description =
        fmt::format("compressed-tensors int{}: weight_packed I32 LSB-first, group {}", hf.bits, hf.group_size);
  } else {
    fail(ErrorKind::kUnsupported, "{}: compressed-tensors format \"{}\" is not supported", where, hf.format);
  }
  return hf;
}

HfQuantization parse_hf(const json& object, std::string_view where) {
  const json& method_value = object["quant_method"];
  if (!method_value.is_string()) fail(ErrorKind::kInvalidFile, "{}: quant_method must be a string", where);
  const std::string method = method_value.get<std::string>();
  if (method == "mxfp4") {
    HfQuantization hf;
    hf.kind = HfQuantKind::kMxfp4;
    hf.method = method;
    hf.format = "mxfp4";
    hf.bits = 4;
    hf.group_size = 32;
    hf.excluded_modules = string_list(object, {"modules_to_not_convert"}, where);
    hf.equivalent = QuantSpec{QuantMode::kMxfp4, 4, 32};
    hf.description = "gpt-oss MXFP4: *_blocks U8 [.., in/32, 16], *_scales E8M0 per 32";
    return hf;
  }
  if (method == "modelopt") return parse_modelopt(object, where);
  if (method == "compressed-tensors") return parse_compressed_tensors(object, where);
  if (method == "fp8") {
    HfQuantization hf;
    hf.kind = HfQuantKind::kBlockFp8;
    hf.method = method;
    hf.format = read_string(object, "fmt", "e4m3", where);
    hf.bits = 8;
    const json block = object.contains("weight_block_size") ? object["weight_block_size"] : json();
    if (!block.is_array() || block.size() != 2 || !block[0].is_number_integer() || !block[1].is_number_integer() ||
        block[0].get<int>() <= 0 || block[1].get<int>() <= 0) {
      fail(ErrorKind::kUnsupported, "{}: fp8 without weight_block_size [rows, cols] is not supported", where);
    }
    hf.weight_block_size = {block[0].get<int>(), block[1].get<int>()};
    hf.excluded_modules = string_list(object, {"modules_to_not_convert"}, where);
    hf.description = fmt::format("block FP8 E4M3: weight_scale_inv F32 per {}x{} block", hf.weight_block_size[0],
                                 hf.weight_block_size[1]);
    return hf;
  }
  fail(ErrorKind::kUnsupported, "{}: quant_method \"{}\" is not supported", where, method);
}

QuantConfig hf_config(HfQuantization hf) {
  QuantConfig config;
  config.source = QuantConfig::Source::kHuggingFace;
  if (hf.equivalent) config.base = *hf.equivalent;
  config.hf = std::move(hf);
  return config;
}

// A quantization block found in config.json: MLX if it has no quant_method, HF otherwise.
QuantConfig parse_block(const json& object, std::string_view where) {
  if (!object.is_object()) fail(ErrorKind::kInvalidFile, "{}: quantization config must be an object", where);
  if (object.contains("quant_method")) return hf_config(parse_hf(object, where));
  return parse_mlx(object, where);
}

// HF ignore lists hold module names (any naming; a prefix covers its children) or `re:` regular expressions.
bool excluded(const std::vector<std::string>& patterns, const std::string& canonical_path) {
  for (const std::string& pattern : patterns) {
    if (pattern.starts_with("re:")) {
      try {
        if (std::regex_match(canonical_path, std::regex(pattern.substr(3)))) return true;
      } catch (const std::regex_error&) {
        continue;  // a pattern we cannot compile excludes nothing
      }
      continue;
    }
    const std::string name = canonical_tensor_name(pattern);
    if (canonical_path == name || (canonical_path.starts_with(name) && canonical_path[name.size()] == '.')) return true;
    // Ignore lists sometimes name leaf modules without their parents ("lm_head", "router").
    if (canonical_path.ends_with("." + pattern)) return true;
  }
  return false;
}

}  // namespace

std::optional<QuantMode> quant_mode_from_name(std::string_view name) {
  if (name == "affine") return QuantMode::kAffine;
  if (name == "mxfp4") return QuantMode::kMxfp4;
  if (name == "mxfp8") return QuantMode::kMxfp8;
  if (name == "nvfp4") return QuantMode::kNvfp4;
  return std::nullopt;
}

void validate_quant_spec(const QuantSpec& spec, std::string_view where) {
  switch (spec.mode) {
    case QuantMode::kNone:
      return;
    case QuantMode::kAffine:
      if (std::find(std::begin(kAffineBits), std::end(kAffineBits), spec.bits) == std::end(kAffineBits) ||
          std::find(std::begin(kAffineGroups), std::end(kAffineGroups), spec.group_size) == std::end(kAffineGroups)) {
        fail(ErrorKind::kInvalidFile,
             "{}: affine bits {} / group_size {} is invalid: bits must be 2, 3, 4, 5, 6 or 8 and group_size 32, 64 "
             "or 128",
             where, spec.bits, spec.group_size);
      }
      return;
    case QuantMode::kMxfp4:
    case QuantMode::kMxfp8:
    case QuantMode::kNvfp4: {
      const QuantSpec expected = default_spec(spec.mode);
      if (spec != expected) {
        fail(ErrorKind::kInvalidFile, "{}: {} needs bits {} and group_size {}, got bits {} and group_size {}", where,
             quant_spec_name(spec), expected.bits, expected.group_size, spec.bits, spec.group_size);
      }
      return;
    }
  }
}

QuantSpec QuantConfig::spec_for(std::string_view module_path, bool has_scales_tensor) const {
  const std::string path = canonical_tensor_name(module_path);
  if (source == Source::kMlx) {
    const auto it = overrides.find(path);
    if (it != overrides.end()) return it->second.value_or(QuantSpec{});
    return has_scales_tensor ? base : QuantSpec{};
  }
  if (source == Source::kHuggingFace && hf && has_scales_tensor && !excluded(hf->excluded_modules, path)) {
    if (!hf->equivalent) {
      fail(ErrorKind::kUnsupported, "module '{}': {} weights ({}) have no kernel yet", path, hf->method, hf->format);
    }
    return *hf->equivalent;
  }
  return {};
}

QuantConfig parse_quant_config(const json& config, const json* hf_quant_config, std::string_view source) {
  if (config.contains("quantization")) {
    return parse_block(config["quantization"], fmt::format("{}: \"quantization\"", source));
  }
  if (config.contains("quantization_config")) {
    return parse_block(config["quantization_config"], fmt::format("{}: \"quantization_config\"", source));
  }
  if (config.contains("text_config") && config["text_config"].is_object()) {
    const json& text = config["text_config"];
    for (const char* key : {"quantization", "quantization_config"}) {
      if (text.contains(key)) return parse_block(text[key], fmt::format("{}: \"text_config.{}\"", source, key));
    }
  }
  if (hf_quant_config != nullptr) return hf_config(parse_modelopt(*hf_quant_config, "hf_quant_config.json"));
  return {};
}

}  // namespace loom::weights
