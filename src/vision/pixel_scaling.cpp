#include "vision/pixel_scaling.h"

#include "core/error.h"
#include "vision/preprocess_config.h"

namespace loom::vision {
namespace {

std::array<float, 3> three_floats(const nlohmann::json& value, const char* field) {
  if (value.is_number()) {
    const float v = value.get<float>();
    return {v, v, v};
  }
  if (!value.is_array() || value.size() != 3 || !value[0].is_number() || !value[1].is_number() ||
      !value[2].is_number()) {
    fail(ErrorKind::kInvalidFile, "preprocessor config field '{}' must be a number or 3 numbers", field);
  }
  return {value[0].get<float>(), value[1].get<float>(), value[2].get<float>()};
}

}  // namespace

PixelScaling pixel_scaling_from_json(const nlohmann::json& config, PixelScaling defaults) {
  PixelScaling s = defaults;
  s.do_rescale = config_bool(config, "do_rescale", s.do_rescale);
  s.rescale_factor = config_number(config, "rescale_factor", s.rescale_factor);
  s.do_normalize = config_bool(config, "do_normalize", s.do_normalize);
  if (config.contains("image_mean") && !config["image_mean"].is_null()) {
    s.mean = three_floats(config["image_mean"], "image_mean");
  }
  if (config.contains("image_std") && !config["image_std"].is_null()) {
    s.std = three_floats(config["image_std"], "image_std");
  }
  return s;
}

PixelTable pixel_table(const PixelScaling& scaling) {
  PixelTable table;
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      // Written as separate float32 statements so no step is fused or kept in higher precision.
      float x = static_cast<float>(v);
      if (scaling.do_rescale) x = static_cast<float>(static_cast<double>(v) * scaling.rescale_factor);
      if (scaling.do_normalize) {
        const float centred = x - scaling.mean[c];
        x = centred / scaling.std[c];
      }
      table[c][v] = x;
    }
  }
  return table;
}

}  // namespace loom::vision
