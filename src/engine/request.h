#pragma once
// What a caller hands the engine (Request) and what it gets back, event by event (StreamEvent). The prompt arrives
// already tokenized with its image spans laid out (src/prompt/ builds it); the engine never renders templates.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "engine/sampler.h"
#include "engine/sampling_params.h"
#include "model/model.h"

namespace loom::engine {

// One image of the prompt: prompt rows [start, start + length) are its soft tokens (each the model's image token id),
// to be replaced by the embeddings model.encode_image(pixels) returns (length rows).
struct ImageInput {
  int64_t start = 0;
  int64_t length = 0;
  int index = 0;  // the image's number in the request (for messages)
  model::ImagePixels pixels;
  // The span's tokens attend to each other in both directions at prefill (ModelInfo::bidirectional_images). Such a
  // span is never split across prefill chunks.
  bool bidirectional = false;
};

struct StopRules {
  std::vector<int32_t> ids;          // in addition to ModelInfo::stop_ids
  std::vector<std::string> strings;  // matched on the decoded text, excluded from the output
  bool ignore_model_stop_ids = false;
};

struct Request {
  std::vector<int32_t> prompt;  // token ids, image soft tokens included
  std::vector<ImageInput> images;
  SamplingParams sampling;
  int64_t max_tokens = 256;  // generated tokens at most (>= 1); also bounded by the model context
  StopRules stop;
  // M-RoPE (ModelInfo::position_axes == 3): positions of the prompt, axis-major [3, prompt.size()]. Generated token i
  // (cache index n + i for a prompt of n) gets position n + i + rope_delta on every axis. Empty: every axis is the
  // token index (text-only prompts, and the only choice for 1-axis models).
  std::vector<int32_t> mrope_positions;
  int64_t rope_delta = 0;
  bool skip_special_tokens = true;  // in the text deltas
};

enum class FinishReason { kStop, kLength, kCancelled, kError };

// "stop", "length", "cancelled", "error" (the OpenAI spelling where OpenAI has one).
std::string_view finish_reason_name(FinishReason reason);

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // every sampled token, a stop id included
};

struct StreamEvent {
  enum class Kind { kToken, kFinish };
  Kind kind = Kind::kToken;

  // kToken: one generated token (not emitted for a stop id). `text` is the output text this token releases (possibly
  // empty while a multi-byte character or a possible stop string is pending). kFinish: `text` is what was still held
  // back at the end (empty after a stop).
  int32_t token = -1;
  std::string text;
  std::optional<float> logprob;   // when SamplingParams::logprobs
  std::vector<TokenLogprob> top;  // SamplingParams::top_logprobs entries

  // kFinish only.
  FinishReason reason = FinishReason::kStop;
  std::optional<std::string> stop_string;  // the stop string that ended the text
  std::optional<int32_t> stop_token;       // the stop id that ended the generation
  ErrorKind error_kind = ErrorKind::kInternal;
  std::string error;  // reason kError: what went wrong
  Usage usage;
};

}  // namespace loom::engine
