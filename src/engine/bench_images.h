#pragma once
// The synthetic images `loom bench --images` puts into the engine's prompt, in the layout of the model family's
// preprocessor: Gemma 3 one 1-crop image of the tower's image_size (896 px for the 4B/12B/27B towers); Gemma 4 the
// default budget of 280 soft tokens (a 960 × 672 image: 60 × 42 patches of 16 px, pooled 3 × 3).

#include <cstdint>
#include <random>

#include "model/model.h"
#include "weights/snapshot.h"

namespace loom::engine {

struct BenchImageLayout {
  int32_t boi = -1, eoi = -1;
  int64_t soft_tokens = 0;
  // Gemma 3: pixel_values [1, 3, image_size, image_size]. Gemma 4: [grid_w · grid_h, patch_elements] patches with
  // their (x, y) positions.
  bool patches = false;
  int64_t image_size = 0;
  int64_t patch_elements = 0, grid_w = 0, grid_h = 0;
};

// The placeholders of one image: <boi> image-token × soft_tokens <eoi>. Throws loom::Error(kInvalidRequest) for a
// model that is no Gemma 3 or Gemma 4 vision model.
BenchImageLayout bench_image_layout(const weights::Snapshot& snapshot, const model::ModelInfo& info);

// Random pixels in that layout: Gemma 3 normalised to [-1, 1], Gemma 4 in [0, 1].
model::ImagePixels bench_image_pixels(const BenchImageLayout& layout, std::mt19937_64& random);

}  // namespace loom::engine
