// Paged attention against a dense double-precision reference, the masks against their written definition, and a
// ragged batch (prefill chunk + decode token) against the same sequences run one at a time.
#include <gtest/gtest.h>

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/reference/reference.h"
#include "test_util.h"

namespace loom::backend {
namespace {

using testing::kUnit;
using testing::random_floats;
using testing::tensor_of;

struct Config {
  int heads, kv_heads, d;
  AttentionSpec spec;
  std::vector<TokenRange> spans{};
  std::vector<int64_t> chunks{};  // tokens per step: prefill chunks then decode steps
};

// Error bound for one attention output, derived from the inputs: each logit is an fp32 dot product (dot_bound, times
// the scale; the softcap's tanh adds a few ulps of the cap), exp sees an argument off by twice that plus its own
// rounding, which perturbs each weight relatively; the weighted sum of `keys` values adds its own accumulation error.
double attention_bound(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                       int64_t keys, const Config& c) {
  double max_qk = 0, max_v = 0;
  for (float x : v) max_v = std::max(max_v, static_cast<double>(std::abs(x)));
  double max_q = 0, max_k = 0;
  for (float x : q) max_q = std::max(max_q, static_cast<double>(std::abs(x)));
  for (float x : k) max_k = std::max(max_k, static_cast<double>(std::abs(x)));
  max_qk = max_q * max_k * c.d;  // ≥ Σ|q_i k_i| for every pair
  double logit_error = c.spec.scale * testing::dot_bound(c.d, max_qk);
  if (c.spec.logit_softcap > 0) logit_error += 4 * kUnit * c.spec.logit_softcap;
  const double max_logit = c.spec.logit_softcap > 0 ? c.spec.logit_softcap : c.spec.scale * max_qk;
  const double weight_error = 2 * logit_error + 2 * max_logit * kUnit + 2 * kUnit;
  return max_v * (2 * weight_error + 2 * (keys + 4) * kUnit) + 1e-7;
}

void run_config(const Config& c) {
  ThreadPool pool(2);
  cpu::CpuBackend backend(pool);
  std::mt19937 rng(static_cast<unsigned>(c.d * 31 + c.heads));
  int64_t total = 0;
  for (int64_t n : c.chunks) total += n;
  KvCache cache({.layers = {{c.kv_heads, c.d}, {c.kv_heads, c.d}}, .blocks = 64});
  // Interleave another sequence's blocks so this one's table is not contiguous.
  std::vector<int32_t> other, table;
  for (int64_t t = 16; t <= total + 16; t += 16) {
    cache.reserve(other, t);
    cache.reserve(table, t);
  }
  const auto q_all = random_floats(rng, static_cast<size_t>(total * c.heads * c.d));
  const auto k_all = random_floats(rng, static_cast<size_t>(total * c.kv_heads * c.d));
  const auto v_all = random_floats(rng, static_cast<size_t>(total * c.kv_heads * c.d));
  int64_t start = 0;
  for (int64_t n : c.chunks) {
    Batch batch;
    batch.sequences.push_back(
        {.token_offset = 0, .token_count = n, .kv_start = start, .block_table = table, .bidirectional_spans = c.spans});
    batch.token_ids.assign(static_cast<size_t>(n), 0);
    batch.positions.assign(static_cast<size_t>(n), 0);
    const auto slice = [&](const std::vector<float>& all, int64_t width) {
      return std::vector<float>(all.begin() + start * width, all.begin() + (start + n) * width);
    };
    const int64_t q_width = c.heads * c.d, kv_width = c.kv_heads * c.d;
    backend.kv_append(cache, 1, batch, tensor_of(slice(k_all, kv_width), {n, c.kv_heads, c.d}),
                      tensor_of(slice(v_all, kv_width), {n, c.kv_heads, c.d}));
    const auto q = slice(q_all, q_width);
    Tensor out = Tensor::zeros(DType::kF32, {n, c.heads, c.d});
    backend.attention(tensor_of(q, {n, c.heads, c.d}), cache, 1, batch, c.spec, out);
    const std::vector<float> keys(k_all.begin(), k_all.begin() + (start + n) * kv_width);
    const std::vector<float> values(v_all.begin(), v_all.begin() + (start + n) * kv_width);
    const auto want =
        reference::attention(q, keys, values, n, start + n, start, c.heads, c.kv_heads, c.d, c.spans, c.spec);
    const double bound = attention_bound(q, keys, values, start + n, c);
    const auto got = testing::values_of(out);
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], bound) << "step starting at " << start << " element " << i;
    }
    start += n;
  }
}

TEST(AttentionMask, ReferencePredicateFollowsTheDefinitions) {
  const AttentionSpec causal{.mask = MaskKind::kCausal};
  const AttentionSpec sliding{.mask = MaskKind::kSliding, .window = 3};
  const AttentionSpec full{.mask = MaskKind::kFull};
  const std::vector<TokenRange> none;
  for (int64_t q = 0; q < 12; ++q) {
    for (int64_t k = 0; k < 12; ++k) {
      EXPECT_EQ(reference::mask_allows(causal, none, q, k), k <= q);
      EXPECT_EQ(reference::mask_allows(sliding, none, q, k), k <= q && k > q - 3);  // kv_idx > q_idx − window
      EXPECT_TRUE(reference::mask_allows(full, none, q, k));
    }
  }
  const std::vector<TokenRange> image{{2, 6}};
  EXPECT_TRUE(reference::mask_allows(causal, image, 3, 5));   // soft tokens of one image see each other
  EXPECT_FALSE(reference::mask_allows(causal, image, 6, 7));  // text after the image stays causal
  EXPECT_FALSE(reference::mask_allows(causal, image, 1, 2));  // text before the image does not see it
  EXPECT_TRUE(reference::mask_allows(sliding, image, 5, 2));  // the span is OR-ed onto the window
}

// Gemma 4's composition: AND(k > q − window, OR(k ≤ q, same span)) on sliding layers; full layers ignore spans.
TEST(AttentionMask, SpanModesFollowTheirDefinitions) {
  const AttentionSpec within{.mask = MaskKind::kSliding, .window = 3, .spans = SpanMode::kWithinWindow};
  const AttentionSpec ignore{.mask = MaskKind::kCausal, .spans = SpanMode::kIgnore};
  const std::vector<TokenRange> image{{2, 9}};
  for (int64_t q = 0; q < 12; ++q) {
    for (int64_t k = 0; k < 12; ++k) {
      const bool same = q >= 2 && q < 9 && k >= 2 && k < 9;
      EXPECT_EQ(reference::mask_allows(within, image, q, k), k > q - 3 && (k <= q || same)) << q << " " << k;
      EXPECT_EQ(reference::mask_allows(ignore, image, q, k), k <= q) << q << " " << k;
    }
  }
  EXPECT_TRUE(reference::mask_allows(within, image, 3, 8));   // later soft tokens of the same image
  EXPECT_FALSE(reference::mask_allows(within, image, 8, 2));  // earlier ones beyond the window stay hidden
}

// One-hot values (v_j = e_j) make the output row the attention weights themselves: a key is visible exactly when its
// weight is positive. Checks every (query, key) pair of a prefill with two image spans against the predicate.
TEST(AttentionMask, CpuVisibilityEqualsThePredicate) {
  cpu::CpuBackend backend;
  const int64_t n = 40;
  const std::vector<TokenRange> spans{{3, 9}, {20, 31}};
  for (const AttentionSpec& spec :
       {AttentionSpec{.scale = 0.1f, .mask = MaskKind::kCausal},
        AttentionSpec{.scale = 0.1f, .mask = MaskKind::kSliding, .window = 5},
        AttentionSpec{.scale = 0.1f, .mask = MaskKind::kSliding, .window = 5, .spans = SpanMode::kWithinWindow},
        AttentionSpec{.scale = 0.1f, .mask = MaskKind::kCausal, .spans = SpanMode::kIgnore}}) {
    KvCache cache({.layers = {{1, static_cast<int>(n)}}, .blocks = 8});
    Batch batch;
    batch.sequences.push_back({.token_count = n, .bidirectional_spans = spans});
    cache.reserve(batch.sequences[0].block_table, n);
    batch.token_ids.assign(n, 0);
    batch.positions.assign(n, 0);
    std::vector<float> one_hot(static_cast<size_t>(n * n), 0.0f);
    for (int64_t j = 0; j < n; ++j) one_hot[static_cast<size_t>(j * n + j)] = 1.0f;
    std::mt19937 rng(3);
    backend.kv_append(cache, 0, batch, tensor_of(random_floats(rng, n * n), {n, 1, n}), tensor_of(one_hot, {n, 1, n}));
    Tensor out = Tensor::zeros(DType::kF32, {n, 1, n});
    backend.attention(tensor_of(random_floats(rng, n * n), {n, 1, n}), cache, 0, batch, spec, out);
    for (int64_t q = 0; q < n; ++q) {
      for (int64_t k = 0; k < n; ++k) {
        ASSERT_EQ(out.data_as<float>()[q * n + k] > 0, reference::mask_allows(spec, spans, q, k))
            << "query " << q << " key " << k;
      }
    }
  }
}

TEST(Attention, PagedCausalGqaPrefillThenDecode) {
  run_config({.heads = 8, .kv_heads = 2, .d = 64, .spec = {.scale = 0.125f}, .chunks = {23, 1, 1, 17}});
}

TEST(Attention, PagedSlidingWindowWithSoftcap) {
  run_config({.heads = 4,
              .kv_heads = 4,
              .d = 33,
              .spec = {.scale = 0.5f, .mask = MaskKind::kSliding, .window = 7, .logit_softcap = 5.0f},
              .chunks = {1, 19, 1, 1}});
}

TEST(Attention, PagedHeadDim512SingleKvHead) {
  run_config({.heads = 3, .kv_heads = 1, .d = 512, .spec = {.scale = 1.0f / 16}, .chunks = {37, 1}});
}

TEST(Attention, BidirectionalImageSpansAtPrefill) {
  run_config({.heads = 2,
              .kv_heads = 1,
              .d = 16,
              .spec = {.scale = 0.25f, .mask = MaskKind::kSliding, .window = 4},
              .spans = {{2, 12}, {14, 20}},
              .chunks = {25, 1}});
}

// Two sequences in one step — a prefill chunk on top of cached history and a single decode token — give exactly what
// each gives alone: rows of different sequences never mix.
TEST(Attention, RaggedBatchEqualsSeparateRuns) {
  ThreadPool pool(3);
  cpu::CpuBackend backend(pool);
  std::mt19937 rng(5);
  const int heads = 4, kv_heads = 2, d = 32;
  KvCache cache({.layers = {{kv_heads, d}}, .blocks = 32});
  // Sequence A: 10 cached tokens, then a chunk of 21. Sequence B: 30 cached tokens, then one decode token.
  SequenceSlice a{.token_offset = 0, .token_count = 21, .kv_start = 10};
  SequenceSlice b{.token_offset = 21, .token_count = 1, .kv_start = 30};
  cache.reserve(a.block_table, 31);
  cache.reserve(b.block_table, 31);
  const auto history = [&](SequenceSlice seq, int64_t count) {
    Batch h;
    h.sequences.push_back({.token_count = count, .block_table = seq.block_table});
    h.token_ids.assign(static_cast<size_t>(count), 0);
    h.positions.assign(static_cast<size_t>(count), 0);
    backend.kv_append(cache, 0, h, tensor_of(random_floats(rng, count * kv_heads * d), {count, kv_heads, d}),
                      tensor_of(random_floats(rng, count * kv_heads * d), {count, kv_heads, d}));
  };
  history(a, 10);
  history(b, 30);
  const auto q = random_floats(rng, 22 * heads * d);
  const auto k = random_floats(rng, 22 * kv_heads * d);
  const auto v = random_floats(rng, 22 * kv_heads * d);
  const AttentionSpec spec{.scale = 0.2f};

  Batch both;
  both.sequences = {a, b};
  both.token_ids.assign(22, 0);
  both.positions.assign(22, 0);
  backend.kv_append(cache, 0, both, tensor_of(k, {22, kv_heads, d}), tensor_of(v, {22, kv_heads, d}));
  Tensor together = Tensor::zeros(DType::kF32, {22, heads, d});
  backend.attention(tensor_of(q, {22, heads, d}), cache, 0, both, spec, together);

  for (const SequenceSlice& seq : {a, b}) {
    Batch alone;
    alone.sequences.push_back(seq);
    alone.sequences[0].token_offset = 0;
    alone.token_ids.assign(static_cast<size_t>(seq.token_count), 0);
    alone.positions.assign(static_cast<size_t>(seq.token_count), 0);
    const int64_t w = heads * d;
    const std::vector<float> q_rows(q.begin() + seq.token_offset * w,
                                    q.begin() + (seq.token_offset + seq.token_count) * w);
    Tensor out = Tensor::zeros(DType::kF32, {seq.token_count, heads, d});
    backend.attention(tensor_of(q_rows, {seq.token_count, heads, d}), cache, 0, alone, spec, out);
    for (int64_t i = 0; i < seq.token_count * w; ++i) {
      ASSERT_EQ(out.data_as<float>()[i], together.data_as<float>()[seq.token_offset * w + i]) << "element " << i;
    }
  }
}

TEST(Attention, DenseBidirectionalPerImage) {
  cpu::CpuBackend backend;
  std::mt19937 rng(9);
  const int heads = 4, d = 24;
  const std::vector<SequenceSlice> images{{.token_offset = 0, .token_count = 7},
                                          {.token_offset = 7, .token_count = 33}};
  const int64_t t = 40;
  const auto q = random_floats(rng, t * heads * d);
  const auto k = random_floats(rng, t * heads * d);
  const auto v = random_floats(rng, t * heads * d);
  const AttentionSpec spec{.scale = 0.2f, .mask = MaskKind::kFull};
  Tensor out = Tensor::zeros(DType::kF32, {t, heads, d});
  backend.attention_dense(tensor_of(q, {t, heads, d}), tensor_of(k, {t, heads, d}), tensor_of(v, {t, heads, d}), images,
                          spec, out);
  const Config config{.heads = heads, .kv_heads = heads, .d = d, .spec = spec};
  for (const SequenceSlice& image : images) {
    const int64_t w = heads * d, b = image.token_offset * w, e = (image.token_offset + image.token_count) * w;
    const std::vector<float> qi(q.begin() + b, q.begin() + e), ki(k.begin() + b, k.begin() + e),
        vi(v.begin() + b, v.begin() + e);
    const auto want =
        reference::attention(qi, ki, vi, image.token_count, image.token_count, 0, heads, heads, d, {}, spec);
    const double bound = attention_bound(qi, ki, vi, image.token_count, config);
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(out.data_as<float>()[b + static_cast<int64_t>(i)], want[i], bound);
  }
}

}  // namespace
}  // namespace loom::backend
