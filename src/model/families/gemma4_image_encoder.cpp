#include "model/families/gemma4_image_encoder.h"

#include "model/families/gemma4_vision.h"

namespace loom::model {
namespace {

class TowerEncoder final : public Gemma4ImageEncoder {
 public:
  TowerEncoder(const weights::Snapshot& snapshot, const WeightLoader& loader, backend::Backend& backend)
      : tower_(snapshot, loader, backend) {}
  Tensor encode(const ImagePixels& image) override { return tower_.encode(image); }

 private:
  Gemma4VisionTower tower_;
};

}  // namespace

std::unique_ptr<Gemma4ImageEncoder> make_gemma4_image_encoder(const weights::Snapshot& snapshot,
                                                              const WeightLoader& loader, backend::Backend& backend) {
  return std::make_unique<TowerEncoder>(snapshot, loader, backend);
}

}  // namespace loom::model
