#pragma once
// One request image from reference to model input: resolve (vision::resolve_media, or the caller's fetcher for
// http(s) URLs), decode, and run the family's preprocessor. The result carries the pixels the model takes and the
// number of soft tokens the prompt must reserve for it.

#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/model.h"
#include "prompt/family.h"
#include "vision/image_decode.h"
#include "vision/media_source.h"
#include "vision/preprocess_gemma3.h"
#include "vision/preprocess_gemma4.h"
#include "vision/preprocess_qwen3vl.h"

namespace loom::prompt {

// The family's preprocessor settings, read once from preprocessor_config.json.
struct ImageSettings {
  vision::Gemma3ImageConfig gemma3;
  vision::Gemma4ImageConfig gemma4;
  vision::Qwen3VLImageConfig qwen3vl;

  static ImageSettings from_json(Family family, const nlohmann::json& preprocessor);
};

// Per-request choices.
struct ImageRequestOptions {
  int gemma4_max_soft_tokens = 0;  // 0: the preprocessor config's budget
  bool gemma3_pan_and_scan = false;
  int gemma3_tokens_per_picture = 256;
};

struct PreparedImage {
  model::ImagePixels pixels;
  int tokens_per_picture = 0;  // soft tokens of one block
  int crops = 0;               // Gemma 3 pan-and-scan crops (blocks = 1 + crops)
};

// http(s) URL → encoded bytes; the server installs one that applies vision::is_public_address.
using RemoteFetcher = std::function<std::vector<uint8_t>(const std::string& url)>;

struct ImageSourceOptions {
  vision::MediaOptions media;
  vision::DecodeLimits decode;
  RemoteFetcher fetch_remote;  // empty: remote images are refused
};

// Decodes the reference into RGB. Errors are loom::Error naming the problem (not yet the image index).
vision::Image load_image(const std::string& reference, const ImageSourceOptions& options);

PreparedImage prepare_image(const vision::Image& image, Family family, const ImageSettings& settings,
                            const ImageRequestOptions& options);

}  // namespace loom::prompt
