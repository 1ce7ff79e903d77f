#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace loom::engine {
namespace sampling {
namespace {

// The ranking of sampler.h: larger logit first, ties to the lower id.
struct RankOrder {
  std::span<const float> logits;
  bool operator()(int32_t a, int32_t b) const {
    const float la = logits[static_cast<size_t>(a)];
    const float lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  }
};

float finite_max(std::span<const float> logits) {
  if (logits.empty()) fail(ErrorKind::kInternal, "[sampler] empty logits row");
  float m = -std::numeric_limits<float>::infinity();
  for (float l : logits) {
    if (std::isnan(l)) fail(ErrorKind::kInternal, "[sampler] the model produced a NaN logit");
    m = std::max(m, l);
  }
  if (m == -std::numeric_limits<float>::infinity()) fail(ErrorKind::kInternal, "[sampler] every logit is -inf");
  return m;
}

}  // namespace

void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias) {
  for (const auto& [id, b] : bias) logits[static_cast<size_t>(id)] += b;
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> ids, float penalty) {
  if (penalty == 1.0f) return;
  for (int32_t id : ids) {
    float& l = logits[static_cast<size_t>(id)];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
}

void apply_presence_frequency(std::span<float> logits, std::span<const std::pair<int32_t, int32_t>> counts,
                              float presence, float frequency) {
  if (presence == 0.0f && frequency == 0.0f) return;
  for (const auto& [id, count] : counts) {
    if (count <= 0) continue;
    logits[static_cast<size_t>(id)] -= presence + frequency * static_cast<float>(count);
  }
}

void apply_temperature(std::span<float> logits, float temperature) {
  if (temperature == 1.0f) return;
  for (float& l : logits) l /= temperature;
}

int32_t argmax(std::span<const float> logits) {
  finite_max(logits);  // rejects empty rows and NaN
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

std::vector<int32_t> kept_tokens(std::span<const float> logits, float top_p, float min_p, int top_k) {
  const float m = finite_max(logits);
  const auto n = static_cast<int64_t>(logits.size());
  auto weight = [&](int32_t id) { return std::exp(static_cast<double>(logits[static_cast<size_t>(id)]) - m); };
  const bool use_k = top_k > 0 && top_k < n;
  const bool use_p = top_p < 1.0f;
  const bool use_min_p = min_p > 0.0f;

  std::vector<int32_t> ranked;
  ranked.reserve(static_cast<size_t>(use_k ? top_k : n));
  for (int32_t id = 0; id < n; ++id) {
    const float l = logits[static_cast<size_t>(id)];
    if (l == -std::numeric_limits<float>::infinity()) continue;  // probability zero: never kept
    if (use_min_p && !use_k && weight(id) < min_p) continue;     // cheap pre-filter; the prefix rule re-checks
    ranked.push_back(id);
  }
  if (!use_k && !use_p && !use_min_p) return ranked;  // ascending already

  const RankOrder order{logits};
  if (use_k && static_cast<int64_t>(ranked.size()) > top_k) {
    std::nth_element(ranked.begin(), ranked.begin() + top_k, ranked.end(), order);
    ranked.resize(static_cast<size_t>(top_k));
  }
  std::sort(ranked.begin(), ranked.end(), order);

  size_t keep = ranked.size();
  if (use_min_p) {
    size_t i = 0;
    while (i < keep && weight(ranked[i]) >= min_p) ++i;  // weight = probability / largest probability
    keep = i;
  }
  if (use_p) {
    double total = 0.0;
    for (float l : logits) total += std::exp(static_cast<double>(l) - m);
    double cumulative = 0.0;
    for (size_t i = 0; i < keep; ++i) {
      cumulative += weight(ranked[i]) / total;
      if (cumulative >= static_cast<double>(top_p)) {
        keep = i + 1;
        break;
      }
    }
  }
  keep = std::max<size_t>(keep, 1);  // the most likely token always survives (min_p ≤ 1, top_p > 0)
  ranked.resize(keep);
  std::sort(ranked.begin(), ranked.end());
  return ranked;
}

int32_t draw(std::span<const float> logits, std::span<const int32_t> kept, double u) {
  if (kept.empty()) fail(ErrorKind::kInternal, "[sampler] nothing left to draw from");
  float m = -std::numeric_limits<float>::infinity();
  for (int32_t id : kept) m = std::max(m, logits[static_cast<size_t>(id)]);
  // One exponential per kept token, in float (an unfiltered draw covers the whole vocabulary, 262k entries for Gemma,
  // every token: two passes of double exponentials cost milliseconds), summed in double.
  thread_local std::vector<float> weights;
  weights.resize(kept.size());
  double total = 0.0;
  for (size_t i = 0; i < kept.size(); ++i) {
    weights[i] = std::exp(logits[static_cast<size_t>(kept[i])] - m);
    total += weights[i];
  }
  const double target = u * total;
  double cumulative = 0.0;
  for (size_t i = 0; i < kept.size(); ++i) {
    cumulative += weights[i];
    if (cumulative > target) return kept[i];
  }
  return kept.back();
}

double uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

float log_softmax_at(std::span<const float> logits, int32_t id) {
  const float m = finite_max(logits);
  double total = 0.0;
  for (float l : logits) total += std::exp(static_cast<double>(l) - m);
  return static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - m - std::log(total));
}

std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, int n) {
  const float m = finite_max(logits);
  double total = 0.0;
  for (float l : logits) total += std::exp(static_cast<double>(l) - m);
  const double log_total = std::log(total);
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  const size_t count = std::min(ids.size(), static_cast<size_t>(std::max(n, 0)));
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count), ids.end(), RankOrder{logits});
  std::vector<TokenLogprob> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const double l = logits[static_cast<size_t>(ids[i])];
    out.push_back({ids[i], static_cast<float>(l - m - log_total)});
  }
  return out;
}

}  // namespace sampling

Sampler::Sampler(SamplingParams params, std::span<const int32_t> prompt, int64_t vocab_size)
    : params_(std::move(params)), vocab_size_(vocab_size) {
  params_.validate(vocab_size);
  seed_ = params_.seed ? *params_.seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  rng_.seed(seed_);
  if (params_.repetition_penalty != 1.0f) {
    for (int32_t id : prompt) {
      if (id >= 0 && id < vocab_size_) note_seen(id);
    }
  }
}

void Sampler::note_seen(int32_t id) {
  if (seen_set_.insert(id).second) seen_.push_back(id);
}

SampledToken Sampler::sample(std::span<const float> logits) {
  if (static_cast<int64_t>(logits.size()) != vocab_size_) {
    fail(ErrorKind::kInternal, "[sampler] logits row has {} entries, vocabulary has {}", logits.size(), vocab_size_);
  }
  work_.assign(logits.begin(), logits.end());
  const std::span<float> work(work_);
  sampling::apply_logit_bias(work, params_.logit_bias);
  sampling::apply_repetition_penalty(work, seen_, params_.repetition_penalty);
  sampling::apply_presence_frequency(work, counts_, params_.presence_penalty, params_.frequency_penalty);

  SampledToken out;
  if (params_.greedy()) {
    out.id = sampling::argmax(work);
  } else {
    sampling::apply_temperature(work, params_.temperature);
    const std::vector<int32_t> kept = sampling::kept_tokens(work, params_.top_p, params_.min_p, params_.top_k);
    out.id = sampling::draw(work, kept, sampling::uniform(rng_));
  }

  if (params_.repetition_penalty != 1.0f) note_seen(out.id);
  const auto [it, inserted] = count_index_.try_emplace(out.id, counts_.size());
  if (inserted) counts_.emplace_back(out.id, 0);
  ++counts_[it->second].second;

  if (params_.logprobs) {
    out.logprob = sampling::log_softmax_at(logits, out.id);
    if (params_.top_logprobs > 0) out.top = sampling::top_logprobs(logits, params_.top_logprobs);
  }
  return out;
}

}  // namespace loom::engine
