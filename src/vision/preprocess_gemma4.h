#pragma once
// Gemma 4 image preprocessing (transformers Gemma4ImageProcessor, PIL backend): an aspect-preserving resize to sides
// that are multiples of pooling_kernel_size * patch_size (48) within a budget of max_soft_tokens * 9 patches, PIL
// BICUBIC, ×1/255 without normalisation, then patches of 16x16x3 in (py, px, c) order, padded to the budget with
// zero pixels and (-1, -1) positions.

#include <nlohmann/json.hpp>
#include <utility>

#include "core/tensor.h"
#include "vision/image.h"
#include "vision/pixel_scaling.h"
#include "vision/resize.h"

namespace loom::vision {

struct Gemma4ImageConfig {
  int patch_size = 16;
  int max_soft_tokens = 280;  // one of 70, 140, 280, 560, 1120
  int pooling_kernel_size = 3;
  bool do_resize = true;
  ResampleFilter resample = ResampleFilter::kBicubic;
  PixelScaling scaling{true, 1.0 / 255.0, false, {0.0f, 0.0f, 0.0f}, {1.0f, 1.0f, 1.0f}};
};

Gemma4ImageConfig gemma4_image_config(const nlohmann::json& config);

// Throws Error(kInvalidRequest) unless tokens is one of the supported budgets.
void check_gemma4_soft_tokens(int tokens);

// (height, width) after the aspect-preserving resize.
std::pair<int, int> gemma4_target_size(int height, int width, int patch_size, int max_patches, int pooling_kernel_size);

struct Gemma4Pixels {
  Tensor pixel_values;  // F32 [max_patches, 3 * patch * patch]
  Tensor position_ids;  // I64 [max_patches, 2]: (x, y) of each patch, (-1, -1) for padding
  int num_soft_tokens = 0;
  int height = 0;  // resized size
  int width = 0;
};

Gemma4Pixels preprocess_gemma4(const Image& image, const Gemma4ImageConfig& config);

}  // namespace loom::vision
