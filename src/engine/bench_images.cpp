// Synthetic bench images (bench_images.h).

#include "engine/bench_images.h"

#include "core/error.h"

namespace loom::engine {
namespace {

// Gemma 4's default budget (processing_gemma4.py image_seq_length): 280 soft tokens of 3×3 patches. A 20 × 14 grid
// of soft tokens is what the processor makes of a 960 × 672 image (60 × 42 patches of 16 px, no padding).
constexpr int64_t kGemma4SoftW = 20, kGemma4SoftH = 14;

}  // namespace

BenchImageLayout bench_image_layout(const weights::Snapshot& snapshot, const model::ModelInfo& info) {
  const nlohmann::json& config = snapshot.config();
  const nlohmann::json* vision = snapshot.vision_config();
  BenchImageLayout layout;
  if (info.image_token_id >= 0 && vision != nullptr && info.architecture == "Gemma3ForConditionalGeneration") {
    layout.image_size = vision->value("image_size", int64_t{224});
    layout.soft_tokens = config.value("mm_tokens_per_image", int64_t{256});
    layout.boi = config.value("boi_token_index", 255999);
    layout.eoi = config.value("eoi_token_index", 256000);
    return layout;
  }
  if (info.image_token_id >= 0 && vision != nullptr && info.architecture == "Gemma4ForConditionalGeneration") {
    const int64_t patch = vision->value("patch_size", int64_t{16});
    const int64_t pool = vision->value("pooling_kernel_size", int64_t{3});
    layout.patches = true;
    layout.patch_elements = 3 * patch * patch;
    layout.grid_w = kGemma4SoftW * pool;
    layout.grid_h = kGemma4SoftH * pool;
    layout.soft_tokens = kGemma4SoftW * kGemma4SoftH;
    layout.boi = config.value("boi_token_id", 255999);
    layout.eoi = config.value("eoi_token_id", 258882);
    return layout;
  }
  fail(ErrorKind::kInvalidRequest, "--images needs a Gemma 3 or Gemma 4 vision model; {} takes no images",
       info.architecture);
}

model::ImagePixels bench_image_pixels(const BenchImageLayout& layout, std::mt19937_64& random) {
  model::ImagePixels pixels;
  pixels.soft_tokens = layout.soft_tokens;
  if (!layout.patches) {
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    pixels.pixel_values = Tensor::zeros(DType::kF32, {1, 3, layout.image_size, layout.image_size});
    for (float& p : pixels.pixel_values.span<float>()) p = value(random);
    return pixels;
  }
  std::uniform_real_distribution<float> value(0.0f, 1.0f);
  const int64_t count = layout.grid_w * layout.grid_h;
  pixels.pixel_values = Tensor::zeros(DType::kF32, {count, layout.patch_elements});
  for (float& p : pixels.pixel_values.span<float>()) p = value(random);
  pixels.position_ids = Tensor::zeros(DType::kI64, {count, 2});
  int64_t* pos = pixels.position_ids.data_as<int64_t>();
  for (int64_t y = 0; y < layout.grid_h; ++y) {
    for (int64_t x = 0; x < layout.grid_w; ++x) {
      pos[2 * (y * layout.grid_w + x)] = x;
      pos[2 * (y * layout.grid_w + x) + 1] = y;
    }
  }
  return pixels;
}

}  // namespace loom::engine
