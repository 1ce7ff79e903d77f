#pragma once
// The quantization a snapshot declares in its config (weight-formats.md §2 "config.json" and §4).
//
// MLX snapshots carry `quantization` / `quantization_config` without a `quant_method` key: a default spec plus
// per-module overrides. Hugging Face quantized checkpoints carry `quantization_config.quant_method` (or, for ModelOpt,
// an hf_quant_config.json); those are recognised and described, and mapped onto an MLX mode when one decodes the same
// bits.

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weights/weight.h"

namespace loom::weights {

// Throws kInvalidFile naming `where` unless the spec is one MLX can produce: affine bits {2,3,4,5,6,8} × group
// {32,64,128}; mxfp4 4-bit/32; mxfp8 8-bit/32; nvfp4 4-bit/16.
void validate_quant_spec(const QuantSpec& spec, std::string_view where);

// "affine", "mxfp4", … as spelled in MLX configs; nullopt for an unknown name.
std::optional<QuantMode> quant_mode_from_name(std::string_view name);

enum class HfQuantKind {
  kMxfp4,            // gpt-oss: *_blocks / *_scales
  kModeloptNvfp4,    // ModelOpt: weight U8, weight_scale E4M3, weight_scale_2
  kCompressedNvfp4,  // compressed-tensors nvfp4-pack-quantized
  kCompressedMxfp4,  // compressed-tensors mxfp4-pack-quantized
  kCompressedInt,    // compressed-tensors pack-quantized (integer, I32-packed)
  kBlockFp8,         // quant_method fp8 with weight_block_size
};

struct HfQuantization {
  HfQuantKind kind = HfQuantKind::kMxfp4;
  std::string method;  // quant_method as written ("mxfp4", "modelopt", "compressed-tensors", "fp8")
  std::string format;  // "nvfp4-pack-quantized", "NVFP4", "e4m3", …
  int bits = 0;
  int group_size = 0;                         // 0 when not grouped
  std::vector<int> weight_block_size;         // block fp8: [rows, cols]
  std::vector<std::string> excluded_modules;  // modules_to_not_convert / ignore / exclude_modules, as written
  std::optional<QuantSpec> equivalent;        // the MLX mode that decodes the same bits, when there is one
  std::string description;                    // one line for `loom info`
};

struct QuantConfig {
  enum class Source { kNone, kMlx, kHuggingFace };
  Source source = Source::kNone;
  QuantSpec base;  // MLX: the spec of modules without an override
  // MLX: canonical module path (tensor_names.h) → spec; nullopt means the module stays float (`false` in the config).
  std::map<std::string, std::optional<QuantSpec>> overrides;
  std::optional<HfQuantization> hf;

  bool quantized() const { return source != Source::kNone; }

  // The storage format of the Linear/Embedding at `module_path` (any naming): an override wins; otherwise the module
  // is quantized iff its scales tensor exists (`<path>.scales`, or `weight_scale` / `_scales` for HF formats).
  // Throws kUnsupported for an HF format that has no MLX-equivalent mode.
  QuantSpec spec_for(std::string_view module_path, bool has_scales_tensor) const;
};

// `config` is config.json; `hf_quant_config` is hf_quant_config.json when the snapshot has one (else nullptr).
// `source` names the config file in errors. Unknown quant_method → kUnsupported naming it.
QuantConfig parse_quant_config(const nlohmann::json& config, const nlohmann::json* hf_quant_config,
                               std::string_view source);

}  // namespace loom::weights
