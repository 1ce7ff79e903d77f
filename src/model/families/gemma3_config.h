#pragma once
// Gemma 3's configuration: transformers' Gemma3TextConfig / SiglipVisionConfig defaults overlaid with config.json.
// Published checkpoints omit most fields (gemma-3-4b-it's text_config lists six), so the defaults are part of the
// model definition. The text-only checkpoints (1B, 270M: Gemma3ForCausalLM) keep the text fields at the top level.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace loom::weights {
class Snapshot;
}

namespace loom::model {

struct Gemma3Config {
  std::string architecture;
  TextConfig text;
  std::optional<VisionConfig> vision;  // absent for Gemma3ForCausalLM
  int64_t mm_tokens_per_image = 0;
  int32_t image_token_id = -1;
  int32_t boi_token_id = -1;
  int32_t eoi_token_id = -1;
  std::vector<int32_t> stop_ids;
};

// Throws loom::Error(kInvalidFile) naming config.json and the field for a malformed value, kUnsupported for a
// feature loom does not implement (bidirectional text attention, an unknown rope_type or activation).
Gemma3Config parse_gemma3_config(const weights::Snapshot& snapshot);

}  // namespace loom::model
