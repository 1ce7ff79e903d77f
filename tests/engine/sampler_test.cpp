// The sampler against straightforward reference implementations written here from the formulas (Hugging Face
// repetition penalty, OpenAI presence/frequency, softmax filters by full sort) and the documented draw procedure.

#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>

#include "core/error.h"

namespace loom::engine {
namespace {

using Ids = std::vector<int32_t>;

std::vector<float> random_logits(std::mt19937& rng, int n, float scale = 3.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> out(static_cast<size_t>(n));
  for (float& x : out) x = dist(rng);
  return out;
}

// Reference: processed logits for the next token given the history, straight from the formulas.
std::vector<float> reference_processed(std::vector<float> logits, const SamplingParams& p, const Ids& prompt,
                                       const Ids& output) {
  for (const auto& [id, b] : p.logit_bias) logits[static_cast<size_t>(id)] += b;
  std::set<int32_t> seen(prompt.begin(), prompt.end());
  seen.insert(output.begin(), output.end());
  for (int32_t id : seen) {
    float& l = logits[static_cast<size_t>(id)];
    l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
  }
  std::map<int32_t, int> counts;
  for (int32_t id : output) ++counts[id];
  for (const auto& [id, c] : counts) logits[static_cast<size_t>(id)] -= p.presence_penalty;
  for (const auto& [id, c] : counts) logits[static_cast<size_t>(id)] -= p.frequency_penalty * static_cast<float>(c);
  return logits;
}

int32_t reference_argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());  // first maximum = lowest id
}

// Reference: kept set by full sort and explicit probabilities.
Ids reference_kept(const std::vector<float>& logits, float top_p, float min_p, int top_k) {
  const size_t n = logits.size();
  Ids order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const double m = logits[static_cast<size_t>(order[0])];
  double z = 0;
  for (float l : logits) z += std::exp(l - m);
  std::vector<double> prob(n);
  for (size_t i = 0; i < n; ++i) prob[i] = std::exp(logits[i] - m) / z;
  size_t by_p = n, by_min = 0, by_k = top_k > 0 ? std::min<size_t>(n, static_cast<size_t>(top_k)) : n;
  double cum = 0;
  for (size_t i = 0; i < n && top_p < 1.0f; ++i) {
    cum += prob[static_cast<size_t>(order[i])];
    if (cum >= top_p) {
      by_p = i + 1;
      break;
    }
  }
  const double p_max = prob[static_cast<size_t>(order[0])];
  while (by_min < n && prob[static_cast<size_t>(order[by_min])] >= min_p * p_max) ++by_min;
  Ids kept(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(std::min({by_p, by_min, by_k})));
  std::sort(kept.begin(), kept.end());
  return kept;
}

TEST(SamplingTransforms, LogitBiasAddsPerId) {
  std::vector<float> logits = {0.5f, -1.0f, 2.0f};
  const std::vector<std::pair<int32_t, float>> bias = {{2, -3.0f}, {0, 1.5f}};
  sampling::apply_logit_bias(logits, bias);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, -1.0f, -1.0f}));
}

TEST(SamplingTransforms, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  std::vector<float> logits = {2.0f, -2.0f, 3.0f, 0.0f};
  sampling::apply_repetition_penalty(logits, Ids{0, 1, 3}, 2.0f);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -4.0f, 3.0f, 0.0f}));
}

TEST(SamplingTransforms, PresenceOnceFrequencyPerCount) {
  std::vector<float> logits = {1.0f, 1.0f, 1.0f};
  const std::vector<std::pair<int32_t, int32_t>> counts = {{0, 3}, {2, 1}};
  sampling::apply_presence_frequency(logits, counts, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(logits[0], 1.0f - 0.5f - 0.75f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f);
  EXPECT_FLOAT_EQ(logits[2], 1.0f - 0.5f - 0.25f);
}

TEST(SamplingTransforms, ArgmaxTiesGoToTheLowestId) {
  EXPECT_EQ(sampling::argmax(std::vector<float>{1, 3, 3, 2}), 1);
  EXPECT_EQ(sampling::argmax(std::vector<float>{-INFINITY, -5}), 1);
  EXPECT_THROW(sampling::argmax(std::vector<float>{1, NAN}), Error);
}

TEST(SamplingTransforms, TopPKeepsTheMinimalNucleus) {
  const std::vector<float> logits = {std::log(0.2f), std::log(0.5f), std::log(0.3f)};
  EXPECT_EQ(sampling::kept_tokens(logits, 0.45f, 0.0f, 0), (Ids{1}));
  EXPECT_EQ(sampling::kept_tokens(logits, 0.79f, 0.0f, 0), (Ids{1, 2}));
  EXPECT_EQ(sampling::kept_tokens(logits, 0.81f, 0.0f, 0), (Ids{0, 1, 2}));
}

TEST(SamplingTransforms, MinPIsRelativeToTheLargestProbability) {
  const std::vector<float> logits = {std::log(0.05f), std::log(0.5f), std::log(0.3f), std::log(0.15f)};
  EXPECT_EQ(sampling::kept_tokens(logits, 1.0f, 0.29f, 0), (Ids{1, 2, 3}));  // threshold 0.145
  EXPECT_EQ(sampling::kept_tokens(logits, 1.0f, 0.31f, 0), (Ids{1, 2}));     // threshold 0.155
  EXPECT_EQ(sampling::kept_tokens(logits, 1.0f, 1.0f, 0), (Ids{1}));
}

TEST(SamplingTransforms, TopKTiesKeepTheLowerIds) {
  const std::vector<float> logits = {1, 2, 2, 2, 0};
  EXPECT_EQ(sampling::kept_tokens(logits, 1.0f, 0.0f, 2), (Ids{1, 2}));
  EXPECT_EQ(sampling::kept_tokens(logits, 1.0f, 0.0f, 0), (Ids{0, 1, 2, 3, 4}));
}

TEST(SamplingTransforms, FiltersMatchTheFullSortReference) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 80);
    const std::vector<float> logits = random_logits(rng, n, 1.0f + static_cast<float>(trial % 4));
    const float top_p = (trial % 3 == 0) ? 1.0f : 0.05f + 0.9f * static_cast<float>(rng() % 1000) / 1000.0f;
    const float min_p = (trial % 5 == 0) ? 0.0f : static_cast<float>(rng() % 1000) / 4000.0f;
    const int top_k = (trial % 2 == 0) ? 0 : 1 + static_cast<int>(rng() % 20);
    EXPECT_EQ(sampling::kept_tokens(logits, top_p, min_p, top_k), reference_kept(logits, top_p, min_p, top_k))
        << "trial " << trial;
  }
}

TEST(SamplingTransforms, LogprobsAreTheLogSoftmax) {
  std::mt19937 rng(3);
  const std::vector<float> logits = random_logits(rng, 30);
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  for (int32_t id = 0; id < 30; ++id) {
    EXPECT_NEAR(sampling::log_softmax_at(logits, id), logits[static_cast<size_t>(id)] - std::log(z), 1e-5);
  }
  const std::vector<TokenLogprob> top = sampling::top_logprobs(logits, 5);
  Ids order(30);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  ASSERT_EQ(top.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(top[i].id, order[i]);
    EXPECT_NEAR(top[i].logprob, logits[static_cast<size_t>(order[i])] - std::log(z), 1e-5);
  }
  EXPECT_EQ(sampling::top_logprobs(std::vector<float>{0, 1, 1}, 2), (std::vector<TokenLogprob>{
                                                                        {1, sampling::log_softmax_at({{0, 1, 1}}, 1)},
                                                                        {2, sampling::log_softmax_at({{0, 1, 1}}, 2)},
                                                                    }));
}

// Greedy with every penalty on, step by step against the reference pipeline on the same logits.
TEST(Sampler, GreedyWithPenaltiesMatchesTheReference) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 30; ++trial) {
    SamplingParams p;
    p.temperature = 0.0f;
    p.repetition_penalty = 1.0f + static_cast<float>(rng() % 100) / 50.0f;
    p.presence_penalty = static_cast<float>(rng() % 200) / 100.0f - 1.0f;
    p.frequency_penalty = static_cast<float>(rng() % 200) / 100.0f - 1.0f;
    p.logit_bias = {{static_cast<int32_t>(rng() % 12), 2.5f}, {static_cast<int32_t>(rng() % 12), -4.0f}};
    Ids prompt;
    for (int i = 0; i < 6; ++i) prompt.push_back(static_cast<int32_t>(rng() % 12));
    Sampler sampler(p, prompt, 12);
    Ids output;
    for (int step = 0; step < 20; ++step) {
      const std::vector<float> logits = random_logits(rng, 12, 1.0f);
      const int32_t expected = reference_argmax(reference_processed(logits, p, prompt, output));
      const int32_t got = sampler.sample(logits).id;
      ASSERT_EQ(got, expected) << "trial " << trial << " step " << step;
      output.push_back(got);
    }
  }
}

// The documented draw: mt19937_64(seed), u = (x >> 11)·2⁻⁵³, walk the kept ids in ascending order.
TEST(Sampler, DrawFollowsTheDocumentedProcedure) {
  std::mt19937 rng(5);
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.9f;
  p.min_p = 0.02f;
  p.top_k = 10;
  p.frequency_penalty = 0.3f;
  p.seed = 1234;
  Sampler sampler(p, Ids{1, 2, 3}, 40);
  std::mt19937_64 reference_rng(1234);
  Ids output;
  for (int step = 0; step < 200; ++step) {
    const std::vector<float> logits = random_logits(rng, 40, 2.0f);
    std::vector<float> processed = reference_processed(logits, p, {1, 2, 3}, output);
    for (float& l : processed) l /= p.temperature;
    const Ids kept = reference_kept(processed, p.top_p, p.min_p, p.top_k);
    const double u = static_cast<double>(reference_rng() >> 11) / 9007199254740992.0;
    double m = -INFINITY, total = 0, cum = 0;
    for (int32_t id : kept) m = std::max(m, static_cast<double>(processed[id]));
    for (int32_t id : kept) total += std::exp(processed[id] - m);
    int32_t expected = kept.back();
    for (int32_t id : kept) {
      cum += std::exp(processed[id] - m);
      if (cum > u * total) {
        expected = id;
        break;
      }
    }
    const int32_t got = sampler.sample(logits).id;
    ASSERT_EQ(got, expected) << "step " << step;
    output.push_back(got);
  }
}

TEST(Sampler, TopK1AndTinyTemperatureAreGreedy) {
  std::mt19937 rng(9);
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<float> logits = random_logits(rng, 100);
    const int32_t greedy = reference_argmax(logits);
    SamplingParams k1;
    k1.top_k = 1;
    k1.seed = static_cast<uint64_t>(trial);
    EXPECT_EQ(Sampler(k1, {}, 100).sample(logits).id, greedy);
    SamplingParams cold;
    cold.temperature = 1e-4f;
    cold.seed = static_cast<uint64_t>(trial);
    EXPECT_EQ(Sampler(cold, {}, 100).sample(logits).id, greedy);
  }
}

TEST(Sampler, SameSeedSameTokensAndFrequenciesFollowTheDistribution) {
  std::mt19937 rng(2);
  const std::vector<float> logits = random_logits(rng, 6, 1.0f);
  SamplingParams p;
  p.seed = 42;
  Sampler a(p, {}, 6), b(p, {}, 6);
  p.seed = 43;
  Sampler c(p, {}, 6);
  std::vector<int> histogram(6, 0);
  int differ = 0;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    const int32_t x = a.sample(logits).id;
    ASSERT_EQ(x, b.sample(logits).id);
    differ += x != c.sample(logits).id;
    ++histogram[static_cast<size_t>(x)];
  }
  EXPECT_GT(differ, 0);
  double z = 0;
  for (float l : logits) z += std::exp(l);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(histogram[i] / static_cast<double>(draws), std::exp(logits[i]) / z, 0.015) << "token " << i;
  }
}

TEST(Sampler, FilteredTokensAreNeverDrawn) {
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  SamplingParams p;
  p.top_p = 0.65f;  // nucleus {0, 1}
  p.seed = 8;
  Sampler s(p, {}, 4);
  int zeros = 0;
  for (int i = 0; i < 5000; ++i) {
    const int32_t id = s.sample(logits).id;
    ASSERT_TRUE(id == 0 || id == 1);
    zeros += id == 0;
  }
  EXPECT_NEAR(zeros / 5000.0, 0.4 / 0.7, 0.03);  // renormalised inside the nucleus
}

TEST(Sampler, LogprobsUseTheUnmodifiedLogits) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.logit_bias = {{0, 10.0f}};
  p.logprobs = true;
  p.top_logprobs = 2;
  const SampledToken t = Sampler(p, {}, 3).sample(logits);
  EXPECT_EQ(t.id, 0);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(0.5);
  EXPECT_NEAR(t.logprob, 1.0 - std::log(z), 1e-6);
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].id, 1);
  EXPECT_EQ(t.top[1].id, 0);
}

TEST(SamplingParams, ValidationNamesTheField) {
  auto message = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    try {
      p.validate(100);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message([](SamplingParams& p) { p.temperature = -0.1f; }).find("temperature"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.temperature = NAN; }).find("temperature"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_p = 0.0f; }).find("top_p"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_p = 1.5f; }).find("top_p"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_k = -2; }).find("top_k"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.min_p = 1.1f; }).find("min_p"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.repetition_penalty = 0.0f; }).find("repetition_penalty"),
            std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.presence_penalty = 2.5f; }).find("presence_penalty"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.frequency_penalty = -3.0f; }).find("frequency_penalty"),
            std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.logit_bias = {{100, 1.0f}}; }).find("logit_bias"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.logit_bias = {{1, 101.0f}}; }).find("logit_bias"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) {
              p.logprobs = true;
              p.top_logprobs = 21;
            }).find("top_logprobs"),
            std::string::npos);
  EXPECT_EQ(message([](SamplingParams& p) { p.top_k = -1; }), "accepted");
}

}  // namespace
}  // namespace loom::engine
