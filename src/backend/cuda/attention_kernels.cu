// Attention on the GPU: kv_append writes a step's K/V into the paged cache; attention and attention_dense compute
// softmax(mask(q·kᵀ·scale)) · v with causal / sliding / full masks, bidirectional spans and an optional softcap.
//
// One warp per (query row, head): the lanes hold the head's q and output elements (d ≤ 512), walk the visible keys in
// order and keep an online softmax (running max and total) in fp32. This is the simple first kernel: a decode step's
// keys are read once per query head rather than once per kv head, and long contexts are walked by one warp; splitting
// the keys across warps (flash-decoding) and sharing K/V across the heads of a group are the next steps.
#include <cmath>

#include "backend/cuda/kernels.h"

namespace loom::backend::cuda::kernels {
namespace {

constexpr int kPerLane = kMaxHeadDim / 32;
constexpr int kWarpsPerBlock = 4;
constexpr int kMaskFull = 2, kMaskSliding = 1;           // MaskKind values
constexpr int kSpansWithinWindow = 1, kSpansIgnore = 2;  // SpanMode values

__global__ void kv_append_kernel(const float* k, const float* v, StepMeta step, int64_t tokens, int64_t kv_heads,
                                 int64_t d, int64_t block_size, float* key_arena, float* value_arena) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tokens * kv_heads * d) return;
  const int64_t row = i / (kv_heads * d), h = (i / d) % kv_heads, e = i % d;
  const SeqMeta seq = step.seqs[step.row_seq[row]];
  const int64_t j = seq.kv_start + (row - seq.token_offset);
  const int64_t block = step.tables[seq.table_begin + j / block_size];
  const int64_t slot = ((block * kv_heads + h) * block_size + j % block_size) * d + e;
  key_arena[slot] = k[i];
  value_arena[slot] = v[i];
}

template <bool Paged>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    attention_kernel(const float* __restrict__ q, int64_t rows, int64_t heads, int64_t kv_heads, int d,
                     const float* __restrict__ keys, const float* __restrict__ values, int64_t block_size,
                     StepMeta step, MaskParams spec, float* __restrict__ out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t task = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (task >= rows * heads) return;
  const int64_t row = task / heads, head = task % heads;
  const SeqMeta seq = step.seqs[step.row_seq[row]];
  const int64_t qi = seq.kv_start + (row - seq.token_offset);
  const int64_t kv_len = seq.kv_start + seq.token_count;
  const int64_t kvh = head / (heads / kv_heads);
  const int64_t* spans = step.spans + 2 * seq.span_begin;

  int64_t base_lo = 0, base_hi = kv_len;
  if (spec.mask != kMaskFull) {
    base_hi = min(kv_len, qi + 1);
    if (spec.mask == kMaskSliding) base_lo = max(int64_t{0}, qi - spec.window + 1);
  }
  // kIgnore: the spans change nothing; kWithinWindow: they widen only to the right, the window still bounds every
  // key from the left; kWiden: they widen both ways.
  const int span_count = spec.spans == kSpansIgnore ? 0 : seq.span_count;
  const int64_t span_floor = spec.spans == kSpansWithinWindow ? base_lo : 0;
  int64_t lo = base_lo, hi = base_hi;
  for (int s = 0; s < span_count; ++s) {
    if (spans[2 * s] <= qi && qi < spans[2 * s + 1]) {
      lo = min(lo, max(span_floor, spans[2 * s]));
      hi = max(hi, min(spans[2 * s + 1], kv_len));
    }
  }

  const float* qh = q + (row * heads + head) * d;
  float qv[kPerLane], acc[kPerLane];
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    const int idx = lane + 32 * e;
    qv[e] = idx < d ? qh[idx] : 0.0f;
    acc[e] = 0.0f;
  }
  float running_max = -INFINITY, total = 0.0f;
  for (int64_t j = lo; j < hi; ++j) {
    bool visible = j >= base_lo && j < base_hi;
    for (int s = 0; !visible && j >= span_floor && s < span_count; ++s) {
      visible = spans[2 * s] <= qi && qi < spans[2 * s + 1] && spans[2 * s] <= j && j < spans[2 * s + 1];
    }
    if (!visible) continue;
    const float *kj, *vj;
    if constexpr (Paged) {
      const int64_t block = step.tables[seq.table_begin + j / block_size];
      const int64_t offset = ((block * kv_heads + kvh) * block_size + j % block_size) * d;
      kj = keys + offset;
      vj = values + offset;
    } else {
      const int64_t offset = ((seq.token_offset + j) * kv_heads + kvh) * d;
      kj = keys + offset;
      vj = values + offset;
    }
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const int idx = lane + 32 * e;
      if (idx < d) dot = fmaf(qv[e], kj[idx], dot);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) dot += __shfl_xor_sync(0xFFFFFFFFu, dot, offset);
    float logit = dot * spec.scale;
    if (spec.softcap > 0) logit = spec.softcap * tanhf(logit / spec.softcap);
    const float new_max = fmaxf(running_max, logit);
    const float correction = expf(running_max - new_max);  // 0 for the first key (running_max = −inf)
    const float p = expf(logit - new_max);
    total = total * correction + p;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const int idx = lane + 32 * e;
      if (idx < d) acc[e] = fmaf(p, vj[idx], acc[e] * correction);
    }
    running_max = new_max;
  }
  float* oh = out + (row * heads + head) * d;
  const float inv = total > 0 ? 1.0f / total : 0.0f;
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    const int idx = lane + 32 * e;
    if (idx < d) oh[idx] = acc[e] * inv;
  }
}

}  // namespace

void kv_append(const float* k, const float* v, const StepMeta& step, int64_t tokens, int64_t kv_heads, int64_t d,
               int64_t block_size, float* key_arena, float* value_arena) {
  const int64_t total = tokens * kv_heads * d;
  if (total == 0) return;
  kv_append_kernel<<<static_cast<unsigned>((total + 255) / 256), 256>>>(k, v, step, tokens, kv_heads, d, block_size,
                                                                        key_arena, value_arena);
}

void attention(bool paged, const float* q, int64_t rows, int64_t heads, int64_t kv_heads, int d, const float* keys,
               const float* values, int64_t block_size, const StepMeta& step, const MaskParams& mask, float* out) {
  if (rows * heads == 0) return;
  const auto blocks = static_cast<unsigned>((rows * heads + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (paged) {
    attention_kernel<true>
        <<<blocks, kWarpsPerBlock * 32>>>(q, rows, heads, kv_heads, d, keys, values, block_size, step, mask, out);
  } else {
    attention_kernel<false>
        <<<blocks, kWarpsPerBlock * 32>>>(q, rows, heads, kv_heads, d, keys, values, block_size, step, mask, out);
  }
}

}  // namespace loom::backend::cuda::kernels
