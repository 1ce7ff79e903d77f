#pragma once
// How one request chooses its next token. Field meanings follow the OpenAI API where it has the field and Hugging Face
// (`repetition_penalty`, `top_k`, `min_p`) where it does not; the order in which they act is documented in sampler.h.

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace loom::engine {

struct SamplingParams {
  float temperature = 1.0f;  // 0 selects greedy decoding (argmax after penalties and biases)
  float top_p = 1.0f;        // (0, 1]: keep the smallest set of most likely tokens whose probability reaches top_p
  int top_k = 0;             // keep the k most likely tokens; 0 or -1 disables
  float min_p = 0.0f;        // [0, 1]: drop tokens whose probability is below min_p × the most likely token's
  float repetition_penalty = 1.0f;  // > 0; Hugging Face: over prompt and output tokens, divides positive logits
  float presence_penalty = 0.0f;    // [-2, 2]; OpenAI: subtracted once from every token already generated
  float frequency_penalty = 0.0f;   // [-2, 2]; OpenAI: subtracted once per earlier generation of the token
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id → additive bias in [-100, 100]
  std::optional<uint64_t> seed;                       // unset: drawn from std::random_device
  bool logprobs = false;                              // report the sampled token's log-probability
  int top_logprobs = 0;  // [0, 20]: also report this many most likely tokens (needs logprobs)

  bool greedy() const { return temperature == 0.0f; }

  // Checks every field's range (and logit_bias ids against the vocabulary). Throws loom::Error(kInvalidRequest)
  // naming the field, its value and the accepted range.
  void validate(int64_t vocab_size) const;
};

}  // namespace loom::engine
