#pragma once
// Gemma 3 image preprocessing (transformers Gemma3ImageProcessor, PIL backend): optional pan-and-scan crops, then
// every picture (original first, crops after) resized to size.height x size.width with PIL BILINEAR (aspect not
// kept), rescaled, normalised, channels first.

#include <nlohmann/json.hpp>
#include <vector>

#include "core/tensor.h"
#include "vision/image.h"
#include "vision/pixel_scaling.h"
#include "vision/resize.h"

namespace loom::vision {

struct Gemma3ImageConfig {
  int height = 896;
  int width = 896;
  bool do_resize = true;
  ResampleFilter resample = ResampleFilter::kBilinear;
  PixelScaling scaling;  // ×1/255, mean = std = 0.5
  bool do_pan_and_scan = false;
  int pan_and_scan_min_crop_size = 256;
  int pan_and_scan_max_num_crops = 4;
  double pan_and_scan_min_ratio_to_activate = 1.2;
};

// From preprocessor_config.json (or processor_config.json); null fields keep the Gemma 3 processor defaults.
Gemma3ImageConfig gemma3_image_config(const nlohmann::json& config);

struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
};

// The pan-and-scan crops of a width x height picture, row by row; empty when pan-and-scan does not apply.
std::vector<CropBox> gemma3_pan_and_scan_crops(int width, int height, const Gemma3ImageConfig& config);

struct Gemma3Pixels {
  Tensor pixel_values;  // F32 [1 + num_crops, 3, height, width]
  int num_crops = 0;
};

Gemma3Pixels preprocess_gemma3(const Image& image, const Gemma3ImageConfig& config);

}  // namespace loom::vision
