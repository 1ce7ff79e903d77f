// kv_append + paged attention and dense attention on the CUDA backend against the CPU backend: ragged steps mixing
// prefill chunks and decode rows, causal / sliding / full masks, bidirectional spans (every SpanMode), logit softcap,
// grouped heads.
//
// Tolerance: outputs are convex combinations of values in [-1, 1]; the GPU's online softmax and the CPU's three-pass
// softmax round differently (expf vs std::exp, rescaling order), by a few ulp per term: 2e-6 absolute is ample while
// far below any masking mistake (a wrongly visible or hidden key moves outputs by ~1e-2).
#include "backend/kv_cache.h"
#include "cuda_test_util.h"

namespace loom::backend::cuda::testing {
namespace {

constexpr float kTolerance = 2e-6f;

Batch make_batch(std::vector<SequenceSlice> sequences) {
  Batch batch;
  int64_t tokens = 0;
  for (const SequenceSlice& s : sequences) tokens += s.token_count;
  batch.sequences = std::move(sequences);
  batch.token_ids.assign(static_cast<size_t>(tokens), 1);
  batch.positions.resize(static_cast<size_t>(tokens));
  for (size_t i = 0; i < batch.positions.size(); ++i) batch.positions[i] = static_cast<int32_t>(i);
  return batch;
}

TEST_F(CudaTest, PagedAttentionMatchesCpu) {
  const int heads = 4, kv_heads = 2, d = 32;
  const KvCacheConfig config{.layers = {{kv_heads, d}, {kv_heads, d}}, .blocks = 40, .block_size = 4};
  KvCache host_cache(config);
  KvCache device_cache(config, &gpu());
  std::vector<int32_t> table_a, table_b, table_c, unused_a, unused_b, unused_c;
  for (auto [host_table, device_table, tokens] :
       {std::tuple{&table_a, &unused_a, 21}, std::tuple{&table_b, &unused_b, 35}, std::tuple{&table_c, &unused_c, 9}}) {
    host_cache.reserve(*host_table, tokens);
    device_cache.reserve(*device_table, tokens);
    ASSERT_EQ(*host_table, *device_table);  // both caches hand out the same ids
  }
  // Step 1: three prefills (one with an image-like bidirectional span); step 2: a decode row, a chunk and a decode.
  const std::vector<Batch> steps = {
      make_batch({{.token_offset = 0,
                   .token_count = 20,
                   .kv_start = 0,
                   .block_table = table_a,
                   .bidirectional_spans = {{3, 9}}},
                  {.token_offset = 20, .token_count = 30, .kv_start = 0, .block_table = table_b},
                  {.token_offset = 50, .token_count = 8, .kv_start = 0, .block_table = table_c}}),
      make_batch({{.token_offset = 0, .token_count = 1, .kv_start = 20, .block_table = table_a},
                  {.token_offset = 1, .token_count = 5, .kv_start = 30, .block_table = table_b},
                  {.token_offset = 6, .token_count = 1, .kv_start = 8, .block_table = table_c}}),
  };
  const std::vector<AttentionSpec> specs = {
      {.scale = 0.25f, .mask = MaskKind::kCausal},
      {.scale = 0.3f, .mask = MaskKind::kSliding, .window = 6},
      {.scale = 0.5f, .mask = MaskKind::kCausal, .logit_softcap = 2.0f},
      // Gemma 4's span modes: the span [3, 9) is wider than the window, so kWithinWindow's left bound matters.
      {.scale = 0.3f, .mask = MaskKind::kSliding, .window = 4, .spans = SpanMode::kWithinWindow},
      {.scale = 0.25f, .mask = MaskKind::kCausal, .spans = SpanMode::kIgnore},
  };
  for (const Batch& batch : steps) {
    for (int layer = 0; layer < 2; ++layer) {
      const int64_t t = batch.tokens();
      const Tensor k = random({t, kv_heads, d}), v = random({t, kv_heads, d}), q = random({t, heads, d}, -3, 3);
      cpu().kv_append(host_cache, layer, batch, k, v);
      gpu().kv_append(device_cache, layer, batch, gpu().upload(k), gpu().upload(v));
      const Tensor dq = gpu().upload(q);
      for (const AttentionSpec& spec : specs) {
        Tensor expected = Tensor::zeros(DType::kF32, q.shape());
        Tensor got = gpu().allocate(DType::kF32, q.shape());
        cpu().attention(q, host_cache, layer, batch, spec, expected);
        gpu().attention(dq, device_cache, layer, batch, spec, got);
        EXPECT_LE(max_diff(got, expected), kTolerance)
            << "tokens " << t << " layer " << layer << " mask " << static_cast<int>(spec.mask) << " spans "
            << static_cast<int>(spec.spans);
      }
    }
  }
  // A host cache is refused by the GPU ops.
  Tensor out = gpu().allocate(DType::kF32, {1, heads, d});
  EXPECT_THROW(gpu().attention(gpu().upload(random({1, heads, d})), host_cache, 0, steps[1], specs[0], out), Error);
}

TEST_F(CudaTest, DenseAttentionMatchesCpu) {
  const int heads = 6, kv_heads = 3, d = 72;  // d not a multiple of 32: lanes past d idle
  const int64_t t = 27;
  const std::vector<SequenceSlice> sequences = {{.token_offset = 0, .token_count = 16},
                                                {.token_offset = 16, .token_count = 11}};
  const Tensor q = random({t, heads, d}, -3, 3), k = random({t, kv_heads, d}), v = random({t, kv_heads, d});
  const Tensor dq = gpu().upload(q), dk = gpu().upload(k), dv = gpu().upload(v);
  for (const AttentionSpec& spec : {AttentionSpec{.scale = 0.2f, .mask = MaskKind::kFull},
                                    AttentionSpec{.scale = 0.2f, .mask = MaskKind::kCausal, .logit_softcap = 1.5f}}) {
    Tensor expected = Tensor::zeros(DType::kF32, q.shape());
    Tensor got = gpu().allocate(DType::kF32, q.shape());
    cpu().attention_dense(q, k, v, sequences, spec, expected);
    gpu().attention_dense(dq, dk, dv, sequences, spec, got);
    EXPECT_LE(max_diff(got, expected), kTolerance) << static_cast<int>(spec.mask);
  }
}

}  // namespace
}  // namespace loom::backend::cuda::testing
