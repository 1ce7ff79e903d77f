#pragma once
// Chooses one request's next token from the model's logits, on the host.
//
// Order of operations (each step sees the previous step's result):
//   1. mask          reserved for constrained decoding (nothing is masked yet)
//   2. logit_bias    logit[id] += bias
//   3. repetition    for every distinct id in prompt + output: logit > 0 ? logit / p : logit × p   (Hugging Face)
//   4. presence      logit[id] -= presence   for every id generated at least once                (OpenAI)
//   5. frequency     logit[id] -= frequency × (times id was generated)                          (OpenAI)
//   -- temperature == 0: greedy, the argmax of these logits (ties to the lowest id); no random draw. --
//   6. temperature   logit /= temperature
//   7. top-p         keep the shortest prefix of the ranking whose probability sum reaches top_p
//   8. min-p         keep tokens with probability >= min_p × (the largest probability)
//   9. top-k         keep the first k of the ranking
//  10. draw          one uniform u from the request's PRNG, walk the kept tokens in ascending id
// The ranking orders tokens by logit, descending, ties to the lower id. Probabilities in 7 and 8 are the softmax of
// step 6's logits over the whole vocabulary (not renormalised after earlier filters), so each filter keeps a prefix
// of the ranking and the kept set is the shortest of the three prefixes: the order of 7–9 cannot change the result.
//
// The draw: the PRNG is std::mt19937_64 seeded with `seed` (or a std::random_device value, see Sampler::seed()).
// Every non-greedy token takes exactly one 64-bit output x, u = (x >> 11) · 2⁻⁵³ ∈ [0, 1). With the kept tokens'
// weights w = exp(logit − max logit) in ascending id order, the chosen token is the first whose running sum exceeds
// u × Σw (the last kept token if rounding leaves none). The same seed and the same logits give the same tokens on
// every platform: no std::*_distribution is involved.
//
// Logprobs are the log-softmax of the model's *unmodified* logits, not of the distribution after penalties and
// filters: they say what the model thinks of a token independently of the sampling settings, a filtered-out token
// would otherwise show −inf, and greedy golden tests compare them to the reference directly. This is vLLM's default
// (`logprobs_mode=raw_logprobs`). Top logprobs are ranked like the ranking above (ties to the lower id).

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/sampling_params.h"

namespace loom::engine {

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
  bool operator==(const TokenLogprob&) const = default;
};

struct SampledToken {
  int32_t id = 0;
  float logprob = 0.0f;             // only when SamplingParams::logprobs
  std::vector<TokenLogprob> top{};  // SamplingParams::top_logprobs entries, most likely first
};

// The individual transforms, exposed so that each can be tested on its own. All work in place on one row of logits.
namespace sampling {

void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias);
// `ids` are distinct token ids (prompt and output).
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> ids, float penalty);
// `counts`: (token id, times generated) for distinct ids.
void apply_presence_frequency(std::span<float> logits, std::span<const std::pair<int32_t, int32_t>> counts,
                              float presence, float frequency);
void apply_temperature(std::span<float> logits, float temperature);
// Lowest id among the largest logits. Throws kInternal on an empty row or a NaN.
int32_t argmax(std::span<const float> logits);
// The ids kept by top-p, min-p and top-k (steps 7–9), in ascending id order.
std::vector<int32_t> kept_tokens(std::span<const float> logits, float top_p, float min_p, int top_k);
// Step 10 on `kept` (ascending ids) with u ∈ [0, 1).
int32_t draw(std::span<const float> logits, std::span<const int32_t> kept, double u);
// u = (x >> 11) · 2⁻⁵³ for one output x of the generator.
double uniform(std::mt19937_64& rng);
// log-softmax of `logits` at `id`, and the `n` most likely tokens.
float log_softmax_at(std::span<const float> logits, int32_t id);
std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, int n);

}  // namespace sampling

// The sampling state of one request: its parameters, PRNG and the token history the penalties need. Not thread-safe;
// the engine's worker thread owns it.
class Sampler {
 public:
  // Validates `params` against `vocab_size` (throws kInvalidRequest). `prompt` seeds the repetition penalty.
  Sampler(SamplingParams params, std::span<const int32_t> prompt, int64_t vocab_size);

  // Chooses the next token from one row of logits [vocab_size] and records it as generated.
  SampledToken sample(std::span<const float> logits);

  const SamplingParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }

 private:
  void note_seen(int32_t id);

  SamplingParams params_;
  int64_t vocab_size_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::vector<int32_t> seen_;                        // distinct ids of prompt + output
  std::unordered_set<int32_t> seen_set_;             // membership of seen_
  std::vector<std::pair<int32_t, int32_t>> counts_;  // distinct generated ids and their counts
  std::unordered_map<int32_t, size_t> count_index_;  // id → index into counts_
  std::vector<float> work_;
};

}  // namespace loom::engine
