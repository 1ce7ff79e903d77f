#pragma once
// Qwen3-VL image preprocessing (transformers Qwen2VLImageProcessor with Qwen3-VL's config, PIL backend):
// smart_resize to multiples of patch_size * merge_size within [min_pixels, max_pixels], PIL BICUBIC, rescale and
// normalise, the single frame repeated temporal_patch_size times, then rows of C*T*patch*patch values in (C, T, py,
// px) order, the rows ordered by 2x2 merge block (block row, block column, row in block, column in block).

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/tensor.h"
#include "vision/image.h"
#include "vision/pixel_scaling.h"
#include "vision/resize.h"

namespace loom::vision {

struct Qwen3VLImageConfig {
  int patch_size = 16;
  int temporal_patch_size = 2;
  int merge_size = 2;
  int64_t min_pixels = 65536;
  int64_t max_pixels = 16777216;
  bool do_resize = true;
  ResampleFilter resample = ResampleFilter::kBicubic;
  PixelScaling scaling;  // ×1/255, mean = std = 0.5
};

// size.shortest_edge / size.longest_edge give the pixel bounds; min_pixels / max_pixels override them.
Qwen3VLImageConfig qwen3vl_image_config(const nlohmann::json& config);

// (height, width), multiples of `factor`. Throws Error(kInvalidRequest) when the aspect ratio exceeds 200.
std::pair<int, int> qwen_smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels);

struct Qwen3VLPixels {
  Tensor pixel_values;                // F32 [t * h * w, 3 * temporal * patch * patch]
  std::array<int64_t, 3> grid_thw{};  // image_grid_thw: (1, H / patch, W / patch)
  int num_tokens = 0;                 // h * w / merge²
};

Qwen3VLPixels preprocess_qwen3vl(const Image& image, const Qwen3VLImageConfig& config);

}  // namespace loom::vision
