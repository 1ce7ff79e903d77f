#include "server/engine_request.h"

#include <cstring>

#include "core/error.h"
#include "server/api_error.h"

namespace loom::server {
namespace {

// Picture `k` of a Gemma 3 image whose pixel_values hold [1 + crops, 3, H, W].
model::ImagePixels picture(const model::ImagePixels& image, int64_t k, int64_t soft_tokens) {
  const Tensor& all = image.pixel_values;
  if (all.rank() != 4 || k >= all.dim(0) || all.dtype() != DType::kF32) {
    fail(ErrorKind::kInternal, "image span {} has no picture in pixel_values", k);
  }
  model::ImagePixels out;
  out.pixel_values = Tensor::zeros(DType::kF32, {1, all.dim(1), all.dim(2), all.dim(3)});
  const size_t bytes = out.pixel_values.bytes();
  std::memcpy(out.pixel_values.data(), static_cast<const char*>(all.data()) + size_t(k) * bytes, bytes);
  out.soft_tokens = soft_tokens;
  return out;
}

}  // namespace

engine::Request make_engine_request(prompt::PromptIds prompt_ids, const GenerationParams& params, int64_t max_tokens,
                                    const model::ModelInfo& info) {
  // The ids are checked here, where the model is known, so that the refusal names the field like every other one.
  for (const auto& [id, bias] : params.sampling.logit_bias) {
    if (id < 0 || id >= info.vocab_size) {
      fail_param("logit_bias", "'logit_bias' names token {}, outside this model's vocabulary [0, {})", id,
                 info.vocab_size);
    }
  }
  engine::Request request;
  request.prompt = std::move(prompt_ids.ids);
  std::vector<int64_t> pictures_seen(prompt_ids.images.size(), 0);
  for (const auto& span : prompt_ids.spans) {
    if (span.image < 0 || static_cast<size_t>(span.image) >= prompt_ids.images.size()) {
      fail(ErrorKind::kInternal, "image span points at image {} of {}", span.image, prompt_ids.images.size());
    }
    const auto image = static_cast<size_t>(span.image);
    const auto& pixels = prompt_ids.images[image];
    const bool several = pixels.pixel_values.rank() == 4 && pixels.pixel_values.dim(0) > 1;
    request.images.push_back({.start = span.start,
                              .length = span.length,
                              .index = span.image,
                              .pixels = several ? picture(pixels, pictures_seen[image], span.length) : pixels,
                              .bidirectional = info.bidirectional_images});
    ++pictures_seen[image];
  }
  request.mrope_positions.assign(prompt_ids.mrope_positions.begin(), prompt_ids.mrope_positions.end());
  request.rope_delta = prompt_ids.rope_delta;
  request.sampling = params.sampling;
  request.stop = params.stop;
  request.max_tokens = max_tokens;
  return request;
}

void check_context(int64_t prompt_tokens, int64_t max_sequence_tokens) {
  if (prompt_tokens >= max_sequence_tokens) {
    fail(ErrorKind::kContextLength,
         "This model's maximum context length is {} tokens. However, your prompt resulted in {} tokens, which leaves "
         "no room for the completion. Please reduce the length of the messages.",
         max_sequence_tokens, prompt_tokens);
  }
}

}  // namespace loom::server
