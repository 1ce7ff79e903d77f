#include "server/generation_params.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "server/api_error.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

const Json* field(const Json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<double> number(const Json& body, const char* name, double lo, double hi) {
  const Json* value = field(body, name);
  if (!value) return std::nullopt;
  if (!value->is_number()) fail_param(name, "'{}' must be a number, got {}", name, value->type_name());
  const double x = value->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    fail_param(name, "'{}' must be between {} and {}, got {}", name, lo, hi, x);
  }
  return x;
}

std::optional<int64_t> integer(const Json& body, const char* name, int64_t lo, int64_t hi) {
  const Json* value = field(body, name);
  if (!value) return std::nullopt;
  int64_t x = 0;
  if (value->is_number_integer()) {
    if (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
      fail_param(name, "'{}' must be between {} and {}, got {}", name, lo, hi, value->dump());
    }
    x = value->get<int64_t>();
  } else if (value->is_number_float() && std::isfinite(value->get<double>()) &&
             value->get<double>() == std::floor(value->get<double>()) && std::fabs(value->get<double>()) < 9.0e15) {
    x = static_cast<int64_t>(value->get<double>());  // 5.0 is an integer in JSON's number model
  } else {
    fail_param(name, "'{}' must be an integer, got {}", name, value->dump());
  }
  if (x < lo || x > hi) fail_param(name, "'{}' must be between {} and {}, got {}", name, lo, hi, x);
  return x;
}

std::optional<bool> boolean(const Json& body, const char* name) {
  const Json* value = field(body, name);
  if (!value) return std::nullopt;
  if (!value->is_boolean()) fail_param(name, "'{}' must be a boolean, got {}", name, value->type_name());
  return value->get<bool>();
}

void read_stop(const Json& body, const char* name, size_t max_count, engine::StopRules& stop) {
  const Json* value = field(body, name);
  if (!value) return;
  if (value->is_string()) {
    if (!value->get_ref<const std::string&>().empty()) stop.strings.push_back(value->get<std::string>());
    return;
  }
  if (!value->is_array()) fail_param(name, "'{}' must be a string or an array of strings", name);
  if (value->size() > max_count) {
    fail_param(name, "'{}' takes at most {} sequences, got {}", name, max_count, value->size());
  }
  for (size_t i = 0; i < value->size(); ++i) {
    const Json& s = (*value)[i];
    if (!s.is_string()) fail_param(name, "'{}[{}]' must be a string, got {}", name, i, s.type_name());
    if (s.get_ref<const std::string&>().empty()) fail_param(name, "'{}[{}]' must not be empty", name, i);
    stop.strings.push_back(s.get<std::string>());
  }
}

void read_logit_bias(const Json& body, engine::SamplingParams& sampling) {
  const Json* value = field(body, "logit_bias");
  if (!value) return;
  if (!value->is_object()) fail_param("logit_bias", "'logit_bias' must be an object of token id → bias");
  for (const auto& [key, bias] : value->items()) {
    int64_t id = -1;
    size_t used = 0;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || key.empty() || id < 0 || id > std::numeric_limits<int32_t>::max()) {
      fail_param("logit_bias", "'logit_bias' keys must be token ids, got '{}'", key);
    }
    if (!bias.is_number() || !std::isfinite(bias.get<double>()) || bias.get<double>() < -100.0 ||
        bias.get<double>() > 100.0) {
      fail_param("logit_bias", "'logit_bias[{}]' must be a number between -100 and 100, got {}", key, bias.dump());
    }
    sampling.logit_bias.emplace_back(static_cast<int32_t>(id), bias.get<float>());
  }
}

void read_stream(const Json& body, Api api, GenerationParams& params) {
  params.stream = boolean(body, "stream").value_or(false);
  if (api == Api::kMessages) return;
  const Json* options = field(body, "stream_options");
  if (!options) return;
  if (!options->is_object()) fail_param("stream_options", "'stream_options' must be an object");
  if (!params.stream) fail_param("stream_options", "'stream_options' is only allowed when 'stream' is true");
  params.include_usage = boolean(*options, "include_usage").value_or(false);
}

void read_openai_only(const Json& body, Api api, GenerationParams& params) {
  if (const auto n = integer(body, "n", 1, 128); n && *n != 1) {
    throw ParamError(ErrorKind::kUnsupported, "n", fmt::format("'n' must be 1: loom returns one choice, got {}", *n));
  }
  if (api == Api::kCompletions) {
    if (const auto best_of = integer(body, "best_of", 1, 128); best_of && *best_of != 1) {
      throw ParamError(ErrorKind::kUnsupported, "best_of", "'best_of' must be 1");
    }
    if (const Json* suffix = field(body, "suffix");
        suffix && !(suffix->is_string() && suffix->get<std::string>().empty())) {
      throw ParamError(ErrorKind::kUnsupported, "suffix", "'suffix' is not supported");
    }
    params.echo = boolean(body, "echo").value_or(false);
  }
  if (const Json* format = field(body, "response_format")) {
    if (!format->is_object() || !format->contains("type") || !(*format)["type"].is_string()) {
      fail_param("response_format", "'response_format' must be an object with a string 'type'");
    }
    const auto type = (*format)["type"].get<std::string>();
    if (type == "json_object" || type == "json_schema") {
      throw ParamError(ErrorKind::kUnsupported, "response_format",
                       fmt::format("'response_format' type '{}' is not supported: only 'text'", type));
    }
    if (type != "text") fail_param("response_format", "unknown 'response_format' type '{}'", type);
  }
  auto& sampling = params.sampling;
  if (const auto v = number(body, "presence_penalty", -2.0, 2.0)) sampling.presence_penalty = float(*v);
  if (const auto v = number(body, "frequency_penalty", -2.0, 2.0)) sampling.frequency_penalty = float(*v);
  if (const auto v = number(body, "repetition_penalty", 0.0, 1.0e4)) {
    if (*v <= 0.0) fail_param("repetition_penalty", "'repetition_penalty' must be greater than 0, got {}", *v);
    sampling.repetition_penalty = float(*v);
  }
  if (const auto v = number(body, "min_p", 0.0, 1.0)) sampling.min_p = float(*v);
  if (const auto seed =
          integer(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    sampling.seed = static_cast<uint64_t>(*seed);  // two's complement: every int64 seed is a distinct stream
  }
  read_logit_bias(body, sampling);
  if (api == Api::kChat) {
    sampling.logprobs = boolean(body, "logprobs").value_or(false);
    if (const auto top = integer(body, "top_logprobs", 0, 20)) {
      if (!sampling.logprobs && *top > 0) {
        fail_param("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
      }
      sampling.top_logprobs = int(*top);
    }
    read_stop(body, "stop", 4, params.stop);
  } else {
    // Completions: `logprobs` is the number of alternatives (0-5), and asking for it reports the sampled token's.
    if (const auto top = integer(body, "logprobs", 0, 5)) {
      sampling.logprobs = true;
      sampling.top_logprobs = int(*top);
    }
    read_stop(body, "stop", 4, params.stop);
  }
  const auto max_tokens = integer(body, "max_tokens", 1, std::numeric_limits<int32_t>::max());
  const auto max_completion =
      api == Api::kChat ? integer(body, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max()) : std::nullopt;
  params.max_tokens = max_completion ? max_completion : max_tokens;
}

}  // namespace

GenerationParams parse_generation_params(const Json& body, Api api) {
  if (!body.is_object()) fail_param("", "the request body must be a JSON object");
  GenerationParams params;
  auto& sampling = params.sampling;
  const double max_temperature = api == Api::kMessages ? 1.0 : 2.0;
  if (const auto v = number(body, "temperature", 0.0, max_temperature)) sampling.temperature = float(*v);
  if (const auto v = number(body, "top_p", 0.0, 1.0)) {
    if (*v <= 0.0) fail_param("top_p", "'top_p' must be greater than 0 and at most 1, got {}", *v);
    sampling.top_p = float(*v);
  }
  if (const auto k = integer(body, "top_k", -1, std::numeric_limits<int32_t>::max())) sampling.top_k = int(*k);
  read_stream(body, api, params);
  if (api == Api::kMessages) {
    if (!field(body, "max_tokens")) fail_param("max_tokens", "'max_tokens' is required");
    params.max_tokens = integer(body, "max_tokens", 1, std::numeric_limits<int32_t>::max());
    // Anthropic takes a list only (a lone string is an OpenAI-ism the Messages API refuses).
    if (const Json* sequences = field(body, "stop_sequences"); sequences && !sequences->is_array()) {
      fail_param("stop_sequences", "'stop_sequences' must be an array of strings");
    }
    read_stop(body, "stop_sequences", 16, params.stop);
  } else {
    read_openai_only(body, api, params);
  }
  return params;
}

int64_t effective_max_tokens(const GenerationParams& params, int64_t prompt_tokens, int64_t max_sequence_tokens,
                             int64_t cap) {
  int64_t budget = params.max_tokens.value_or(cap);
  budget = std::min(budget, cap);
  budget = std::min(budget, max_sequence_tokens - prompt_tokens);
  return std::max<int64_t>(budget, 1);
}

std::string requested_model(const Json& body) {
  const Json* model = body.is_object() ? field(body, "model") : nullptr;
  if (!model) fail_param("model", "'model' is required");
  if (!model->is_string() || model->get_ref<const std::string&>().empty()) {
    fail_param("model", "'model' must be a non-empty string");
  }
  return model->get<std::string>();
}

}  // namespace loom::server
