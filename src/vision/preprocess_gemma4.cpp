#include "vision/preprocess_gemma4.h"

#include <cmath>

#include "core/error.h"
#include "vision/preprocess_config.h"

namespace loom::vision {

void check_gemma4_soft_tokens(int tokens) {
  for (int allowed : {70, 140, 280, 560, 1120}) {
    if (tokens == allowed) return;
  }
  fail(ErrorKind::kInvalidRequest, "Gemma 4 max_soft_tokens must be one of 70, 140, 280, 560, 1120, got {}", tokens);
}

Gemma4ImageConfig gemma4_image_config(const nlohmann::json& file) {
  const nlohmann::json& config = image_processor_section(file);
  Gemma4ImageConfig c;
  c.patch_size = static_cast<int>(config_int(config, "patch_size", c.patch_size));
  c.max_soft_tokens = static_cast<int>(config_int(config, "max_soft_tokens", c.max_soft_tokens));
  c.pooling_kernel_size = static_cast<int>(config_int(config, "pooling_kernel_size", c.pooling_kernel_size));
  c.do_resize = config_bool(config, "do_resize", c.do_resize);
  c.resample = config_resample(config, c.resample);
  c.scaling = pixel_scaling_from_json(config, c.scaling);
  if (c.patch_size < 1 || c.pooling_kernel_size < 1) {
    fail(ErrorKind::kInvalidFile, "preprocessor config patch_size and pooling_kernel_size must be positive");
  }
  check_gemma4_soft_tokens(c.max_soft_tokens);
  return c;
}

std::pair<int, int> gemma4_target_size(int height, int width, int patch_size, int max_patches,
                                       int pooling_kernel_size) {
  // The same double operations, in the same order, as the Python reference.
  const int64_t total_px = int64_t{height} * width;
  const int64_t target_px = int64_t{max_patches} * patch_size * patch_size;
  const double factor = std::sqrt(static_cast<double>(target_px) / static_cast<double>(total_px));
  const double ideal_h = factor * height;
  const double ideal_w = factor * width;
  const int side = pooling_kernel_size * patch_size;
  int target_h = static_cast<int>(std::floor(ideal_h / side)) * side;
  int target_w = static_cast<int>(std::floor(ideal_w / side)) * side;
  if (target_h == 0 && target_w == 0) {
    fail(ErrorKind::kInvalidRequest, "image of {}x{} would resize to 0x0", width, height);
  }
  const int max_side = (max_patches / (pooling_kernel_size * pooling_kernel_size)) * side;
  // A very thin picture: one row (or column) of pooling blocks, as long as the aspect ratio allows.
  if (target_h == 0) {
    target_h = side;
    target_w = std::min(static_cast<int>(std::floor(static_cast<double>(width) / height)) * side, max_side);
  } else if (target_w == 0) {
    target_w = side;
    target_h = std::min(static_cast<int>(std::floor(static_cast<double>(height) / width)) * side, max_side);
  }
  if (int64_t{target_h} * target_w > target_px) {
    fail(ErrorKind::kInternal, "Gemma 4 resize of {}x{} to {}x{} exceeds {} patches", width, height, target_w, target_h,
         max_patches);
  }
  return {target_h, target_w};
}

Gemma4Pixels preprocess_gemma4(const Image& image, const Gemma4ImageConfig& config) {
  if (image.width < 1 || image.height < 1) fail(ErrorKind::kInvalidRequest, "cannot preprocess an empty image");
  check_gemma4_soft_tokens(config.max_soft_tokens);
  const int p = config.patch_size;
  const int pool = config.pooling_kernel_size;
  const int max_patches = config.max_soft_tokens * pool * pool;
  Image sized;
  if (config.do_resize) {
    const auto [h, w] = gemma4_target_size(image.height, image.width, p, max_patches, pool);
    sized = resize(image, w, h, config.resample);
  } else {
    sized = image;
  }
  const int ph = sized.height / p, pw = sized.width / p;
  if (ph * pw > max_patches) {
    fail(ErrorKind::kInvalidRequest, "image of {}x{} has {} patches, more than the budget of {}", sized.width,
         sized.height, ph * pw, max_patches);
  }
  Gemma4Pixels out;
  out.height = sized.height;
  out.width = sized.width;
  out.num_soft_tokens = ph * pw / (pool * pool);
  const int row = 3 * p * p;
  out.pixel_values = Tensor::zeros(DType::kF32, {max_patches, row});
  out.position_ids = Tensor::zeros(DType::kI64, {max_patches, 2});
  const PixelTable table = pixel_table(config.scaling);
  float* values = out.pixel_values.data_as<float>();
  int64_t* positions = out.position_ids.data_as<int64_t>();
  for (int py = 0; py < ph; ++py) {
    for (int px = 0; px < pw; ++px) {
      const size_t index = static_cast<size_t>(py) * pw + px;
      float* dst = values + index * row;
      for (int dy = 0; dy < p; ++dy) {
        const uint8_t* src = sized.row(py * p + dy) + static_cast<size_t>(px) * p * 3;
        for (int i = 0; i < p * 3; ++i) dst[dy * p * 3 + i] = table[i % 3][src[i]];
      }
      positions[index * 2 + 0] = px;
      positions[index * 2 + 1] = py;
    }
  }
  for (size_t i = static_cast<size_t>(ph) * pw; i < static_cast<size_t>(max_patches); ++i) {
    positions[i * 2 + 0] = -1;
    positions[i * 2 + 1] = -1;
  }
  return out;
}

}  // namespace loom::vision
