#include "prompt/family.h"

#include <array>
#include <string>

namespace loom::prompt {
namespace {

// Gemma 3 (Gemma3Processor): the template renders <start_of_image>, which the processor replaces by the full image
// sequence with blank lines around it. Gemma 4: the template renders "\n\n<|image|>\n\n" and the processor replaces
// <|image|> by <|image> + <|image|> × N + <image|>. Qwen3-VL: the template renders the vision start/end pair around one
// <|image_pad|>, which the processor repeats t·h·w/4 times.
const std::array<FamilySpec, 4> kFamilies = {{
    {Family::kTextOnly, "text", "", "", "", "", "", "", false},
    {Family::kGemma3, "gemma3", "<start_of_image>", "<start_of_image>", "\n\n<start_of_image>", "<image_soft_token>",
     "<end_of_image>\n\n", "<start_of_turn>user\n", false},
    {Family::kGemma4, "gemma4", "<|image|>", "\n\n<|image|>\n\n", "<|image>", "<|image|>", "<image|>", "<|turn>user\n",
     false},
    {Family::kQwen3VL, "qwen3vl", "<|image_pad|>", "<|vision_start|><|image_pad|><|vision_end|>", "", "<|image_pad|>",
     "", "<|im_start|>user\n", true},
}};

Family from_name(const std::string& name) {
  if (name == "gemma3" || name == "Gemma3ForConditionalGeneration") return Family::kGemma3;
  if (name == "gemma4" || name == "gemma4_unified" || name == "Gemma4ForConditionalGeneration") return Family::kGemma4;
  if (name == "qwen3_vl" || name == "qwen3_vl_moe" || name == "Qwen3VLForConditionalGeneration" ||
      name == "Qwen3VLMoeForConditionalGeneration") {
    return Family::kQwen3VL;
  }
  return Family::kTextOnly;
}

std::string string_field(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return {};
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

}  // namespace

const FamilySpec& family_spec(Family family) {
  return kFamilies.at(static_cast<size_t>(family));
}

Family detect_family(const nlohmann::json& config) {
  if (Family f = from_name(string_field(config, "model_type")); f != Family::kTextOnly) return f;
  if (config.is_object()) {
    const auto arch = config.find("architectures");
    if (arch != config.end() && arch->is_array() && !arch->empty() && (*arch)[0].is_string()) {
      if (Family f = from_name((*arch)[0].get<std::string>()); f != Family::kTextOnly) return f;
    }
  }
  return Family::kTextOnly;
}

}  // namespace loom::prompt
