#pragma once
// One spelling for every tensor and module name, whichever convention a snapshot was saved with.
//
// The canonical form is transformers' in-memory naming (transformers 5):
//   model.language_model.layers.N.…   text decoder (Hub/MLX: language_model.model.layers.N.…)
//   lm_head.…                         output projection (Hub/MLX: language_model.lm_head.…)
//   model.vision_tower.…              vision encoder (Hub/MLX: vision_tower.…, including vision_tower.vision_model.…)
//   model.multi_modal_projector.…     projector (Hub/MLX: multi_modal_projector.…)
// and likewise model.visual.…, model.embed_vision.…, model.audio_tower.…, model.embed_audio.… for the other families.
// Names already in this form, and text-only names (model.layers.N.…), are unchanged. The mapping is applied to tensor
// names and to module paths (quantization overrides) alike: it only rewrites leading components.

#include <string>
#include <string_view>

namespace loom::weights {

std::string canonical_tensor_name(std::string_view name);

}  // namespace loom::weights
