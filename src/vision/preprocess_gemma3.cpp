#include "vision/preprocess_gemma3.h"

#include <cmath>

#include "core/error.h"
#include "vision/preprocess_config.h"

namespace loom::vision {
namespace {

Image crop(const Image& image, const CropBox& box) {
  Image out(box.width, box.height);
  for (int y = 0; y < box.height; ++y) {
    const uint8_t* src = image.row(box.y + y) + static_cast<size_t>(box.x) * 3;
    std::copy_n(src, static_cast<size_t>(box.width) * 3, out.row(y));
  }
  return out;
}

// Writes one picture as CHW floats at `dst`.
void write_chw(const Image& image, const PixelTable& table, float* dst) {
  const size_t plane = static_cast<size_t>(image.width) * static_cast<size_t>(image.height);
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) dst[c * plane + i] = table[c][image.pixels[i * 3 + c]];
  }
}

}  // namespace

Gemma3ImageConfig gemma3_image_config(const nlohmann::json& file) {
  const nlohmann::json& config = image_processor_section(file);
  Gemma3ImageConfig c;
  if (config.contains("size") && config["size"].is_object()) {
    c.height = static_cast<int>(config_int(config["size"], "height", c.height));
    c.width = static_cast<int>(config_int(config["size"], "width", c.width));
  }
  if (c.height < 1 || c.width < 1) fail(ErrorKind::kInvalidFile, "preprocessor config 'size' must be positive");
  c.do_resize = config_bool(config, "do_resize", c.do_resize);
  c.resample = config_resample(config, c.resample);
  c.scaling = pixel_scaling_from_json(config, c.scaling);
  c.do_pan_and_scan = config_bool(config, "do_pan_and_scan", c.do_pan_and_scan);
  c.pan_and_scan_min_crop_size =
      static_cast<int>(config_int(config, "pan_and_scan_min_crop_size", c.pan_and_scan_min_crop_size));
  c.pan_and_scan_max_num_crops =
      static_cast<int>(config_int(config, "pan_and_scan_max_num_crops", c.pan_and_scan_max_num_crops));
  c.pan_and_scan_min_ratio_to_activate =
      config_number(config, "pan_and_scan_min_ratio_to_activate", c.pan_and_scan_min_ratio_to_activate);
  if (c.pan_and_scan_min_crop_size < 1 || c.pan_and_scan_max_num_crops < 2) {
    fail(ErrorKind::kInvalidFile, "preprocessor config pan-and-scan limits must be ≥ 1 and ≥ 2");
  }
  return c;
}

std::vector<CropBox> gemma3_pan_and_scan_crops(int width, int height, const Gemma3ImageConfig& c) {
  const double w = width, h = height;
  const bool landscape = width >= height;
  const double ratio = landscape ? w / h : h / w;
  if (ratio < c.pan_and_scan_min_ratio_to_activate) return {};
  const int long_side = landscape ? width : height;
  // Crops along the long axis: the aspect ratio rounded half up, no more than fit at the minimum crop size, then
  // clamped to [2, max].
  int n = static_cast<int>(std::floor(ratio + 0.5));
  n = std::min(static_cast<int>(std::floor(static_cast<double>(long_side) / c.pan_and_scan_min_crop_size)), n);
  n = std::min(c.pan_and_scan_max_num_crops, std::max(2, n));
  const int across = landscape ? n : 1, down = landscape ? 1 : n;
  const int crop_w = static_cast<int>(std::ceil(w / across));
  const int crop_h = static_cast<int>(std::ceil(h / down));
  if (std::min(crop_w, crop_h) < c.pan_and_scan_min_crop_size) return {};
  std::vector<CropBox> crops;
  for (int j = 0; j < down; ++j) {
    for (int i = 0; i < across; ++i) {
      CropBox box{i * crop_w, j * crop_h, crop_w, crop_h};
      // Python slicing stops at the edge: the last crop may be narrower.
      box.width = std::min(box.width, width - box.x);
      box.height = std::min(box.height, height - box.y);
      if (box.width > 0 && box.height > 0) crops.push_back(box);
    }
  }
  return crops;
}

Gemma3Pixels preprocess_gemma3(const Image& image, const Gemma3ImageConfig& config) {
  if (image.width < 1 || image.height < 1) fail(ErrorKind::kInvalidRequest, "cannot preprocess an empty image");
  std::vector<CropBox> crops;
  if (config.do_pan_and_scan) crops = gemma3_pan_and_scan_crops(image.width, image.height, config);
  if (!config.do_resize && !crops.empty()) {
    fail(ErrorKind::kUnsupported, "Gemma 3 pan-and-scan needs do_resize (crops of different sizes cannot stack)");
  }
  const int out_h = config.do_resize ? config.height : image.height;
  const int out_w = config.do_resize ? config.width : image.width;
  Gemma3Pixels result;
  result.num_crops = static_cast<int>(crops.size());
  result.pixel_values = Tensor::zeros(DType::kF32, {1 + result.num_crops, 3, out_h, out_w});
  const PixelTable table = pixel_table(config.scaling);
  float* dst = result.pixel_values.data_as<float>();
  const size_t per_image = 3 * static_cast<size_t>(out_h) * static_cast<size_t>(out_w);
  for (int i = 0; i <= result.num_crops; ++i) {
    const Image source = i == 0 ? image : crop(image, crops[i - 1]);
    const Image sized = config.do_resize ? resize(source, out_w, out_h, config.resample) : source;
    write_chw(sized, table, dst + per_image * i);
  }
  return result;
}

}  // namespace loom::vision
