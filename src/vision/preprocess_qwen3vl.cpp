#include "vision/preprocess_qwen3vl.h"

#include <cmath>

#include "core/error.h"
#include "vision/preprocess_config.h"

namespace loom::vision {

Qwen3VLImageConfig qwen3vl_image_config(const nlohmann::json& file) {
  const nlohmann::json& config = image_processor_section(file);
  Qwen3VLImageConfig c;
  c.patch_size = static_cast<int>(config_int(config, "patch_size", c.patch_size));
  c.temporal_patch_size = static_cast<int>(config_int(config, "temporal_patch_size", c.temporal_patch_size));
  c.merge_size = static_cast<int>(config_int(config, "merge_size", c.merge_size));
  if (config.contains("size") && config["size"].is_object()) {
    c.min_pixels = config_int(config["size"], "shortest_edge", c.min_pixels);
    c.max_pixels = config_int(config["size"], "longest_edge", c.max_pixels);
  }
  c.min_pixels = config_int(config, "min_pixels", c.min_pixels);
  c.max_pixels = config_int(config, "max_pixels", c.max_pixels);
  c.do_resize = config_bool(config, "do_resize", c.do_resize);
  c.resample = config_resample(config, c.resample);
  c.scaling = pixel_scaling_from_json(config, c.scaling);
  if (c.patch_size < 1 || c.temporal_patch_size < 1 || c.merge_size < 1 || c.min_pixels < 1 ||
      c.max_pixels < c.min_pixels) {
    fail(ErrorKind::kInvalidFile, "preprocessor config: patch sizes must be positive and min_pixels ≤ max_pixels");
  }
  return c;
}

std::pair<int, int> qwen_smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels) {
  const double h = height, w = width;
  if (std::max(h, w) / std::min(h, w) > 200) {
    fail(ErrorKind::kInvalidRequest, "image of {}x{} has an aspect ratio above 200", width, height);
  }
  // Python's round() is half-to-even, which nearbyint gives in the default rounding mode.
  int64_t h_bar = static_cast<int64_t>(std::nearbyint(h / factor)) * factor;
  int64_t w_bar = static_cast<int64_t>(std::nearbyint(w / factor)) * factor;
  const double area = static_cast<double>(int64_t{height} * width);
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(area / static_cast<double>(max_pixels));
    h_bar = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(h / beta / factor)) * factor);
    w_bar = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(w / beta / factor)) * factor);
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / area);
    h_bar = static_cast<int64_t>(std::ceil(h * beta / factor)) * factor;
    w_bar = static_cast<int64_t>(std::ceil(w * beta / factor)) * factor;
  }
  return {static_cast<int>(h_bar), static_cast<int>(w_bar)};
}

Qwen3VLPixels preprocess_qwen3vl(const Image& image, const Qwen3VLImageConfig& config) {
  if (image.width < 1 || image.height < 1) fail(ErrorKind::kInvalidRequest, "cannot preprocess an empty image");
  const int p = config.patch_size, m = config.merge_size, t = config.temporal_patch_size;
  Image sized;
  if (config.do_resize) {
    const auto [h, w] = qwen_smart_resize(image.height, image.width, p * m, config.min_pixels, config.max_pixels);
    sized = resize(image, w, h, config.resample);
  } else {
    sized = image;
  }
  if (sized.height % (p * m) != 0 || sized.width % (p * m) != 0) {
    fail(ErrorKind::kInvalidRequest, "image of {}x{} is not a multiple of {} (do_resize is off)", sized.width,
         sized.height, p * m);
  }
  const int gh = sized.height / p, gw = sized.width / p;
  const size_t row = static_cast<size_t>(3) * t * p * p;
  Qwen3VLPixels out;
  out.grid_thw = {1, gh, gw};
  out.num_tokens = gh * gw / (m * m);
  out.pixel_values = Tensor::zeros(DType::kF32, {int64_t{gh} * gw, static_cast<int64_t>(row)});
  const PixelTable table = pixel_table(config.scaling);
  float* dst = out.pixel_values.data_as<float>();
  size_t r = 0;
  for (int by = 0; by < gh / m; ++by) {
    for (int bx = 0; bx < gw / m; ++bx) {
      for (int my = 0; my < m; ++my) {
        for (int mx = 0; mx < m; ++mx, ++r) {
          const int py = by * m + my, px = bx * m + mx;
          float* out_row = dst + r * row;
          for (int c = 0; c < 3; ++c) {
            for (int dy = 0; dy < p; ++dy) {
              const uint8_t* src = sized.row(py * p + dy) + static_cast<size_t>(px) * p * 3 + c;
              float* first = out_row + (static_cast<size_t>(c) * t * p + dy) * p;
              for (int dx = 0; dx < p; ++dx) first[dx] = table[c][src[dx * 3]];
              // The one frame repeated along T: the same patch for every temporal slot.
              for (int k = 1; k < t; ++k) std::copy_n(first, p, first + static_cast<size_t>(k) * p * p);
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace loom::vision
