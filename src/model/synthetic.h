#pragma once
// Synthetic models: the configuration of a real published model with random weights built in memory, in any storage
// format loom reads, so that performance work and tests need no downloads. The weights are random but valid for
// their format (finite scales, no NaN codes) and sized so that activations and logits stay finite: every matrix
// decodes to values uniform in about ±1/sqrt(fan-in), norm weights are 1 and biases 0.
//
// Presets (config.json documents matching the Hugging Face configs of google/gemma-3-*-it):
//   gemma3-270m, gemma3-1b (text-only, Gemma3ForCausalLM), gemma3-4b, gemma3-12b (SigLIP tower, 896 px images),
//   gemma4-e4b, gemma4-31b (Gemma4ForConditionalGeneration text + vision shapes of google/gemma-4-{E4B,31B}-it),
//   tiny (a two-layer VLM with 32 px images, for tests), tiny-gemma4 (a 12-layer Gemma 4 VLM with every tensor kind
//   of the Gemma 4 presets, for tests).
// Formats: f32, f16, bf16, affine-B (B = 2, 3, 4, 5, 6, 8; group 64) or affine-B/gG (G = 32, 64, 128), mxfp4, mxfp8,
// nvfp4. Quantized formats quantize what `loom quantize` would (weights/quantize_policy.h) and keep the rest bf16.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "weights/snapshot.h"
#include "weights/weight.h"

namespace loom::model {

std::vector<std::string> synthetic_presets();

// The preset's config.json. Throws loom::Error(kInvalidRequest) naming the preset and listing the known ones.
nlohmann::json synthetic_config(std::string_view preset);

struct SyntheticFormat {
  DType float_dtype = DType::kBF16;  // of every tensor that is not quantized
  weights::QuantSpec quant;          // kNone: every matrix stays float
};

// Parses a --format value (see above). Throws loom::Error(kInvalidRequest) naming it and listing the accepted forms.
SyntheticFormat parse_synthetic_format(std::string_view name);

// Parameters (elements of every tensor) of the preset, without building it.
int64_t synthetic_parameters(std::string_view preset);

// The preset with random weights in `format`, held in memory (one safetensors image). Same preset, format and seed
// give the same bytes.
weights::Snapshot synthetic_snapshot(std::string_view preset, const SyntheticFormat& format, uint64_t seed = 1);

// Writes `snapshot` as a snapshot folder: config.json and one model.safetensors (metadata format "pt", tensors in
// name order, each in its stored dtype), which loom and transformers both load; no tokenizer (the model runs on ids).
// Creates `dir`; throws loom::Error(kInvalidRequest) naming the path when it exists and is not an empty folder, or on
// an I/O error.
void save_snapshot(const weights::Snapshot& snapshot, const std::filesystem::path& dir);

}  // namespace loom::model
