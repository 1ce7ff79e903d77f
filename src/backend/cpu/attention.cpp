// Attention: appending a step's K/V to the paged cache, and softmax(q·kᵀ)·v over the cache (or over dense K/V for
// vision encoders) with causal / sliding / full masks, bidirectional spans and an optional logit softcap.
//
// One task is (sequence, query head, chunk of query rows). Each query computes its logits for the visible key range
// into a scratch row, then the max-subtracted exponentials, then the weighted sum of values: three passes over keys
// that stay in cache for the lengths a CPU serves, all in fp32.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/check.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd.h"

namespace loom::backend::cpu {
namespace {

constexpr int64_t kQueryChunk = 32;

struct Shapes {
  int64_t heads, kv_heads, d;
};

// Keys and values of one sequence, addressed by token index and kv head.
struct PagedKeys {
  std::vector<const float*> key_blocks, value_blocks;
  int64_t block_size, d;
  const float* key(int64_t kvh, int64_t j) const {
    return key_blocks[static_cast<size_t>(j / block_size)] + (kvh * block_size + j % block_size) * d;
  }
  const float* value(int64_t kvh, int64_t j) const {
    return value_blocks[static_cast<size_t>(j / block_size)] + (kvh * block_size + j % block_size) * d;
  }
};

struct DenseKeys {
  const float *k, *v;
  int64_t kv_heads, d;
  const float* key(int64_t kvh, int64_t j) const { return k + (j * kv_heads + kvh) * d; }
  const float* value(int64_t kvh, int64_t j) const { return v + (j * kv_heads + kvh) * d; }
};

struct Task {
  size_t sequence;
  int64_t head, row_begin, row_end;
};

bool in_span_with(std::span<const TokenRange> spans, int64_t q, int64_t k) {
  for (const TokenRange& s : spans) {
    if (s.start <= q && q < s.end && s.start <= k && k < s.end) return true;
  }
  return false;
}

// One query row: q and out point at [d]; keys visible to sequence index qi among [0, kv_len).
template <typename Keys>
void attend_row(const float* q, const Keys& keys, int64_t kvh, int64_t qi, int64_t kv_len,
                std::span<const TokenRange> spans, const AttentionSpec& spec, int64_t d, float* out,
                std::vector<float>& logits) {
  const SimdKernels& simd = active_kernels();
  // The base mask is a contiguous range; spans containing qi may widen it, and inside the widened range a key is
  // visible if it is in the base range or shares a span with qi.
  int64_t base_lo = 0, base_hi = kv_len;
  if (spec.mask != MaskKind::kFull) {
    base_hi = std::min(kv_len, qi + 1);
    if (spec.mask == MaskKind::kSliding) base_lo = std::max<int64_t>(0, qi - spec.window + 1);
  }
  // kWithinWindow: spans widen only to the right; the window still bounds every key from the left.
  if (spec.spans == SpanMode::kIgnore) spans = {};
  const int64_t floor = spec.spans == SpanMode::kWithinWindow ? base_lo : 0;
  int64_t lo = base_lo, hi = base_hi;
  for (const TokenRange& s : spans) {
    if (s.start <= qi && qi < s.end) {
      lo = std::min(lo, std::max(floor, s.start));
      hi = std::max(hi, std::min(s.end, kv_len));
    }
  }
  std::fill_n(out, d, 0.0f);
  if (hi <= lo) return;
  logits.resize(static_cast<size_t>(hi - lo));
  constexpr float kMasked = -std::numeric_limits<float>::infinity();
  float max_logit = kMasked;
  for (int64_t j = lo; j < hi; ++j) {
    float logit = kMasked;
    if ((j >= base_lo && j < base_hi) || (j >= floor && in_span_with(spans, qi, j))) {
      logit = simd.dot(q, keys.key(kvh, j), d) * spec.scale;
      if (spec.logit_softcap > 0) logit = spec.logit_softcap * std::tanh(logit / spec.logit_softcap);
      max_logit = std::max(max_logit, logit);
    }
    logits[static_cast<size_t>(j - lo)] = logit;
  }
  if (max_logit == kMasked) return;
  float total = 0;
  for (int64_t j = lo; j < hi; ++j) {
    float& l = logits[static_cast<size_t>(j - lo)];
    if (l == kMasked) continue;
    const float p = std::exp(l - max_logit);
    total += p;
    simd.axpy(p, keys.value(kvh, j), out, d);
  }
  const float inv = 1.0f / total;
  for (int64_t i = 0; i < d; ++i) out[i] *= inv;
}

std::vector<Task> make_tasks(std::span<const SequenceSlice> sequences, int64_t heads) {
  std::vector<Task> tasks;
  for (size_t s = 0; s < sequences.size(); ++s) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t r = 0; r < sequences[s].token_count; r += kQueryChunk) {
        tasks.push_back({s, h, r, std::min(sequences[s].token_count, r + kQueryChunk)});
      }
    }
  }
  return tasks;
}

Shapes check_attention_shapes(const Tensor& q, const Tensor& out, int64_t kv_heads, int64_t d, int64_t tokens,
                              std::string_view op) {
  expect_f32(q, op, "q");
  expect_f32(out, op, "out");
  if (q.rank() != 3 || q.dim(0) != tokens || q.dim(2) != d || q.dim(1) % kv_heads != 0) {
    fail(ErrorKind::kInternal, "[{}] q has shape {}, expected [{}, a multiple of {} heads, {}]", op,
         shape_string(q.shape()), tokens, kv_heads, d);
  }
  expect_same_shape(q, out, op, "out");
  return {q.dim(1), kv_heads, d};
}

void expect_host_cache(const KvCache& cache, std::string_view op) {
  if (cache.device().kind != DeviceKind::kCpu)
    fail(ErrorKind::kInternal, "[{}] the KV cache is not in host memory", op);
}

}  // namespace

void CpuBackend::kv_append(KvCache& cache, int layer, const Batch& batch, const Tensor& k, const Tensor& v) {
  expect_host_cache(cache, "kv_append");
  const KvLayerShape& shape = cache.layer_shape(layer);
  batch.validate(cache.block_size());
  expect_f32(k, "kv_append", "k");
  expect_f32(v, "kv_append", "v");
  expect_shape(k, {batch.tokens(), shape.kv_heads, shape.head_dim}, "kv_append", "k");
  expect_shape(v, {batch.tokens(), shape.kv_heads, shape.head_dim}, "kv_append", "v");
  const int64_t bs = cache.block_size();
  const int64_t row_elems = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  for (const SequenceSlice& seq : batch.sequences) {
    for (int64_t t = 0; t < seq.token_count; ++t) {
      const int64_t j = seq.kv_start + t;
      const int32_t block = seq.block_table[static_cast<size_t>(j / bs)];
      float* kb = cache.keys(layer, block);
      float* vb = cache.values(layer, block);
      const int64_t row = seq.token_offset + t;
      for (int64_t h = 0; h < shape.kv_heads; ++h) {
        const int64_t slot = (h * bs + j % bs) * shape.head_dim;
        std::copy_n(k.data_as<float>() + row * row_elems + h * shape.head_dim, shape.head_dim, kb + slot);
        std::copy_n(v.data_as<float>() + row * row_elems + h * shape.head_dim, shape.head_dim, vb + slot);
      }
    }
  }
}

void CpuBackend::attention(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                           const AttentionSpec& spec, Tensor& out) {
  expect_host_cache(cache, "attention");
  const KvLayerShape& shape = cache.layer_shape(layer);
  batch.validate(cache.block_size());
  const Shapes s = check_attention_shapes(q, out, shape.kv_heads, shape.head_dim, batch.tokens(), "attention");
  std::vector<PagedKeys> keys;
  for (const SequenceSlice& seq : batch.sequences) {
    PagedKeys view{{}, {}, cache.block_size(), s.d};
    const int64_t blocks = (seq.kv_start + seq.token_count + cache.block_size() - 1) / cache.block_size();
    for (int64_t b = 0; b < blocks; ++b) {
      view.key_blocks.push_back(cache.keys(layer, seq.block_table[static_cast<size_t>(b)]));
      view.value_blocks.push_back(cache.values(layer, seq.block_table[static_cast<size_t>(b)]));
    }
    keys.push_back(std::move(view));
  }
  const std::vector<Task> tasks = make_tasks(batch.sequences, s.heads);
  const float* qs = q.data_as<float>();
  float* os = out.data_as<float>();
  parallel(static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> logits;
    for (int64_t i = begin; i < end; ++i) {
      const Task& task = tasks[static_cast<size_t>(i)];
      const SequenceSlice& seq = batch.sequences[task.sequence];
      const int64_t kvh = task.head / (s.heads / s.kv_heads);
      for (int64_t r = task.row_begin; r < task.row_end; ++r) {
        const int64_t row = seq.token_offset + r;
        attend_row(qs + (row * s.heads + task.head) * s.d, keys[task.sequence], kvh, seq.kv_start + r,
                   seq.kv_start + seq.token_count, seq.bidirectional_spans, spec, s.d,
                   os + (row * s.heads + task.head) * s.d, logits);
      }
    }
  });
}

void CpuBackend::attention_dense(const Tensor& q, const Tensor& k, const Tensor& v,
                                 std::span<const SequenceSlice> sequences, const AttentionSpec& spec, Tensor& out) {
  expect_f32(k, "attention_dense", "k");
  expect_f32(v, "attention_dense", "v");
  if (k.rank() != 3) fail(ErrorKind::kInternal, "[attention_dense] k has shape {}", shape_string(k.shape()));
  expect_same_shape(k, v, "attention_dense", "v");
  const int64_t tokens = k.dim(0);
  const Shapes s = check_attention_shapes(q, out, k.dim(1), k.dim(2), tokens, "attention_dense");
  int64_t next = 0;
  for (const SequenceSlice& seq : sequences) {
    if (seq.token_offset != next || seq.token_count <= 0 || seq.kv_start != 0) {
      fail(ErrorKind::kInternal, "[attention_dense] sequences must tile the rows in order with kv_start 0");
    }
    next += seq.token_count;
  }
  if (next != tokens) fail(ErrorKind::kInternal, "[attention_dense] sequences cover {} of {} rows", next, tokens);
  const std::vector<Task> tasks = make_tasks(sequences, s.heads);
  const float* qs = q.data_as<float>();
  float* os = out.data_as<float>();
  parallel(static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> logits;
    for (int64_t i = begin; i < end; ++i) {
      const Task& task = tasks[static_cast<size_t>(i)];
      const SequenceSlice& seq = sequences[task.sequence];
      const DenseKeys keys{k.data_as<float>() + seq.token_offset * s.kv_heads * s.d,
                           v.data_as<float>() + seq.token_offset * s.kv_heads * s.d, s.kv_heads, s.d};
      const int64_t kvh = task.head / (s.heads / s.kv_heads);
      for (int64_t r = task.row_begin; r < task.row_end; ++r) {
        const int64_t row = seq.token_offset + r;
        attend_row(qs + (row * s.heads + task.head) * s.d, keys, kvh, r, seq.token_count, seq.bidirectional_spans, spec,
                   s.d, os + (row * s.heads + task.head) * s.d, logits);
      }
    }
  });
}

}  // namespace loom::backend::cpu
