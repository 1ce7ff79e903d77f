#include "engine/sampling_params.h"

#include <cmath>

#include "core/error.h"

namespace loom::engine {
namespace {

void check_range(const char* field, float value, float lo, float hi) {
  if (!std::isfinite(value) || value < lo || value > hi) {
    fail(ErrorKind::kInvalidRequest, "[sampling] {} must be in [{}, {}], got {}", field, lo, hi, value);
  }
}

}  // namespace

void SamplingParams::validate(int64_t vocab_size) const {
  if (!std::isfinite(temperature) || temperature < 0.0f) {
    fail(ErrorKind::kInvalidRequest, "[sampling] temperature must be a finite number >= 0, got {}", temperature);
  }
  if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f) {
    fail(ErrorKind::kInvalidRequest, "[sampling] top_p must be in (0, 1], got {}", top_p);
  }
  if (top_k < -1) fail(ErrorKind::kInvalidRequest, "[sampling] top_k must be >= 0 (0 or -1 disables), got {}", top_k);
  check_range("min_p", min_p, 0.0f, 1.0f);
  if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0.0f) {
    fail(ErrorKind::kInvalidRequest, "[sampling] repetition_penalty must be a finite number > 0, got {}",
         repetition_penalty);
  }
  check_range("presence_penalty", presence_penalty, -2.0f, 2.0f);
  check_range("frequency_penalty", frequency_penalty, -2.0f, 2.0f);
  for (const auto& [id, bias] : logit_bias) {
    if (id < 0 || id >= vocab_size) {
      fail(ErrorKind::kInvalidRequest, "[sampling] logit_bias names token {}, outside the vocabulary [0, {})", id,
           vocab_size);
    }
    check_range("logit_bias value", bias, -100.0f, 100.0f);
  }
  if (top_logprobs < 0 || top_logprobs > 20) {
    fail(ErrorKind::kInvalidRequest, "[sampling] top_logprobs must be in [0, 20], got {}", top_logprobs);
  }
  if (top_logprobs > 0 && !logprobs) {
    fail(ErrorKind::kInvalidRequest, "[sampling] top_logprobs needs logprobs to be enabled");
  }
}

}  // namespace loom::engine
