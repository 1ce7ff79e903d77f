#pragma once
// Pillow-compatible resampling of RGB images: the same output, bit for bit, as `PIL.Image.resize(size, filter)` on
// a mode "RGB" image (Pillow 9.x/10.x, libImaging/Resample.c), which is what the transformers PIL processors call.
//
// The algorithm, restated: a separable convolution, horizontal pass first, then vertical. For each output position
// the filter is centred at (i + 0.5) * scale in input coordinates and, when downscaling, stretched by the scale
// (antialiasing: support and argument both scale by max(1, in/out)). Weights are normalised to sum 1, converted to
// 22-bit fixed point (rounding half away from zero), accumulated in integers from a bias of 0.5 and clipped to
// 0..255 after each pass, so the intermediate image is 8-bit exactly as in Pillow.

#include "vision/image.h"

namespace loom::vision {

enum class ResampleFilter {
  kBilinear,  // PIL.Image.BILINEAR (2): triangle, support 1
  kBicubic,   // PIL.Image.BICUBIC (3): Keys cubic, a = -0.5, support 2
};

// Maps a PIL resample code (2 = BILINEAR, 3 = BICUBIC) to a filter; throws Error(kUnsupported) for others.
ResampleFilter resample_filter_from_pil(int code);

// Resizes to width x height (both ≥ 1). Same size returns a copy, as Pillow does.
Image resize(const Image& input, int width, int height, ResampleFilter filter);

}  // namespace loom::vision
