#include "model/families/gemma4_image_encoder.h"

namespace loom::model {

std::unique_ptr<Gemma4ImageEncoder> make_gemma4_image_encoder(const weights::Snapshot& /*snapshot*/,
                                                              const WeightLoader& /*loader*/,
                                                              backend::Backend& /*backend*/) {
  return nullptr;  // the vision tower lands with gemma4_vision.h
}

}  // namespace loom::model
