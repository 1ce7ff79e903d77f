#pragma once
// A generation route's JSON body → validated generation parameters (sampling, token budget, stop rules, streaming).
// One parser for the three routes so that a field means the same everywhere; every refusal is a ParamError naming
// the field as the API spells it. Unknown fields are ignored, as OpenAI and Anthropic do.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>

#include "engine/request.h"
#include "engine/sampling_params.h"

namespace loom::server {

enum class Api { kChat, kCompletions, kMessages };

struct GenerationParams {
  engine::SamplingParams sampling;
  std::optional<int64_t> max_tokens;  // as asked (max_completion_tokens wins over max_tokens); unset: up to the cap
  engine::StopRules stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: the prompt precedes the completion text
};

// Throws ParamError(kInvalidRequest) naming the field; n > 1 and JSON response formats are refused (unsupported).
GenerationParams parse_generation_params(const nlohmann::ordered_json& body, Api api);

// Tokens the request may generate: the asked budget (or the cap when none was asked), no more than `cap` and no more
// than the context leaves after the prompt (at least 1; the caller refuses prompts that leave no room).
int64_t effective_max_tokens(const GenerationParams& params, int64_t prompt_tokens, int64_t max_sequence_tokens,
                             int64_t cap);

// The model id of a generation body (`model`, a non-empty string).
std::string requested_model(const nlohmann::ordered_json& body);

}  // namespace loom::server
