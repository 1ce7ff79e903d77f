#pragma once
// The seam between the Gemma 4 text model and its vision tower (vision tower + pooler + embed_vision): the model
// holds an encoder built from the snapshot and asks it for the embeddings that replace an image's soft tokens.
// Keeping the tower behind this interface lets the decoder be built and tested on its own.

#include <memory>

#include "backend/backend.h"
#include "core/tensor.h"
#include "model/model.h"
#include "model/weight_loader.h"
#include "weights/snapshot.h"

namespace loom::model {

class Gemma4ImageEncoder {
 public:
  virtual ~Gemma4ImageEncoder() = default;
  // image.pixel_values F32 [patches, 3·patch²], image.position_ids I64 [patches, 2] → F32 [soft_tokens, hidden].
  virtual Tensor encode(const ImagePixels& image) = 0;
};

// The encoder (Gemma4VisionTower, gemma4_vision.h) for a snapshot whose config.json has a vision_config.
std::unique_ptr<Gemma4ImageEncoder> make_gemma4_image_encoder(const weights::Snapshot& snapshot,
                                                              const WeightLoader& loader, backend::Backend& backend);

}  // namespace loom::model
