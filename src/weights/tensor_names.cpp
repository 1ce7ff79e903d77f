#include "weights/tensor_names.h"

#include <array>

namespace loom::weights {
namespace {

// Top-level components that checkpoints saved from a ForConditionalGeneration wrapper store without the `model.`
// prefix that the in-memory module tree has.
constexpr std::array<std::string_view, 8> kWrappedComponents = {
    "vision_tower.", "multi_modal_projector.", "visual.",       "embed_vision.",
    "audio_tower.",  "embed_audio.",           "vision_model.", "audio_model.",
};

}  // namespace

std::string canonical_tensor_name(std::string_view name) {
  if (name.starts_with("language_model.model.")) {
    return "model.language_model." + std::string(name.substr(std::string_view("language_model.model.").size()));
  }
  if (name.starts_with("language_model.lm_head.") || name == "language_model.lm_head") {
    return std::string(name.substr(std::string_view("language_model.").size()));
  }
  if (name.starts_with("language_model.")) return "model." + std::string(name);
  for (std::string_view prefix : kWrappedComponents) {
    if (name.starts_with(prefix) || name == prefix.substr(0, prefix.size() - 1)) return "model." + std::string(name);
  }
  return std::string(name);
}

}  // namespace loom::weights
