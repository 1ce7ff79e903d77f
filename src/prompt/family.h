#pragma once
// How each model family marks an image in its prompt, as data: the text its chat template renders for an image part,
// the placeholder its processor replaces in place, and the block that replaces it (open + soft token × N + close).
// Everything family-specific about prompt assembly is in this table; the assembly code reads it and has no
// per-family branches beyond Gemma 3's pan-and-scan wording and Qwen3-VL's M-RoPE positions.

#include <nlohmann/json.hpp>
#include <string_view>

namespace loom::prompt {

enum class Family { kTextOnly, kGemma3, kGemma4, kQwen3VL };

struct FamilySpec {
  Family family = Family::kTextOnly;
  std::string_view name;
  // The processor's placeholder: each occurrence in the rendered prompt is the next image, replaced in place.
  std::string_view placeholder;
  // What the family's template renders for one image part; inserted when a template renders no placeholder.
  std::string_view rendered_image;
  // The replacement: block_open + soft_token × tokens + block_close.
  std::string_view block_open;
  std::string_view soft_token;
  std::string_view block_close;
  // The opener of a user turn: where images go when the template renders none (after the last one).
  std::string_view user_opener;
  bool mrope = false;  // three-axis positions (Qwen3-VL)
};

const FamilySpec& family_spec(Family family);

// From config.json: model_type (top level, then text_config) and architectures[0]. Families loom does not know
// as vision-language models are kTextOnly: their prompts are rendered and tokenized, images are refused.
Family detect_family(const nlohmann::json& config);

}  // namespace loom::prompt
