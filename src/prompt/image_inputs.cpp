#include "prompt/image_inputs.h"

#include <utility>

#include "core/error.h"

namespace loom::prompt {

ImageSettings ImageSettings::from_json(Family family, const nlohmann::json& preprocessor) {
  ImageSettings settings;
  const nlohmann::json& config = preprocessor.is_object() ? preprocessor : nlohmann::json::object();
  if (family == Family::kGemma3) settings.gemma3 = vision::gemma3_image_config(config);
  if (family == Family::kGemma4) settings.gemma4 = vision::gemma4_image_config(config);
  if (family == Family::kQwen3VL) settings.qwen3vl = vision::qwen3vl_image_config(config);
  return settings;
}

vision::Image load_image(const std::string& reference, const ImageSourceOptions& options) {
  vision::MediaSource source = vision::resolve_media(reference, options.media);
  if (source.kind == vision::MediaSource::Kind::kRemote) {
    if (!options.fetch_remote) fail(ErrorKind::kInvalidRequest, "remote image URLs are not enabled here");
    source.bytes = options.fetch_remote(source.url);
  }
  return vision::decode_image(source.bytes, options.decode);
}

PreparedImage prepare_image(const vision::Image& image, Family family, const ImageSettings& settings,
                            const ImageRequestOptions& options) {
  PreparedImage out;
  switch (family) {
    case Family::kGemma3: {
      vision::Gemma3ImageConfig config = settings.gemma3;
      config.do_pan_and_scan = options.gemma3_pan_and_scan;
      auto pixels = vision::preprocess_gemma3(image, config);
      out.crops = pixels.num_crops;
      out.tokens_per_picture = options.gemma3_tokens_per_picture;
      out.pixels.pixel_values = std::move(pixels.pixel_values);
      out.pixels.soft_tokens = static_cast<int64_t>(1 + out.crops) * out.tokens_per_picture;
      return out;
    }
    case Family::kGemma4: {
      vision::Gemma4ImageConfig config = settings.gemma4;
      if (options.gemma4_max_soft_tokens > 0) config.max_soft_tokens = options.gemma4_max_soft_tokens;
      vision::check_gemma4_soft_tokens(config.max_soft_tokens);
      auto pixels = vision::preprocess_gemma4(image, config);
      out.tokens_per_picture = pixels.num_soft_tokens;
      out.pixels.pixel_values = std::move(pixels.pixel_values);
      out.pixels.position_ids = std::move(pixels.position_ids);
      out.pixels.soft_tokens = pixels.num_soft_tokens;
      return out;
    }
    case Family::kQwen3VL: {
      auto pixels = vision::preprocess_qwen3vl(image, settings.qwen3vl);
      out.tokens_per_picture = pixels.num_tokens;
      out.pixels.pixel_values = std::move(pixels.pixel_values);
      for (int i = 0; i < 3; ++i) out.pixels.grid_thw[i] = pixels.grid_thw[static_cast<size_t>(i)];
      out.pixels.soft_tokens = pixels.num_tokens;
      return out;
    }
    case Family::kTextOnly:
      break;
  }
  fail(ErrorKind::kUnsupported, "this model does not take images");
}

}  // namespace loom::prompt
