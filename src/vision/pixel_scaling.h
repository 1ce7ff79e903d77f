#pragma once
// The "rescale, then normalise" step every family's processor applies to 8-bit pixels, reproduced to the bit:
// transformers' PIL backend computes `float32(float64(v) * rescale_factor)` and then `(x - mean) / std` in float32.
// Only 256 inputs exist per channel, so the whole step is a lookup table computed with those exact operations.

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace loom::vision {

struct PixelScaling {
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> std = {0.5f, 0.5f, 0.5f};
};

// Overrides `defaults` with the do_rescale / rescale_factor / do_normalize / image_mean / image_std fields of a
// preprocessor config (null or absent fields keep the default; mean/std may be one number or three).
PixelScaling pixel_scaling_from_json(const nlohmann::json& config, PixelScaling defaults);

// table[c][v]: the float the processor produces for value v in channel c.
using PixelTable = std::array<std::array<float, 256>, 3>;
PixelTable pixel_table(const PixelScaling& scaling);

}  // namespace loom::vision
