// Attention on the GPU: kv_append writes a step's K/V into the paged cache; attention and attention_dense compute
// softmax(mask(q·kᵀ·scale)) · v with causal / sliding / full masks, bidirectional spans and an optional softcap.
//
// One block per (query row, head, split of the keys): the lanes of a warp hold the head's q and output elements
// (d ≤ 512) and keep an online softmax (running max and total) in fp32 over their keys; warps, then splits, are joined
// by rescaling to a common max (flash-decoding). A decode step's keys are still read once per query head rather than
// once per kv head; sharing K/V across the heads of a group, and tensor-core tiles for prefill, are the next steps.
#include <cmath>

#include "backend/cuda/kernels.h"

namespace loom::backend::cuda::kernels {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kKeysPerStep = 4;
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

// rows[g][e] = from[g][lane + 32·e] (0 past d): this lane's elements of kKeysPerStep key or value vectors, every load
// issued before any is used.
template <int PerLane>
__device__ __forceinline__ void load_lane_elements(const float* const (&from)[kKeysPerStep], int lane, int d,
                                                   float (&rows)[kKeysPerStep][PerLane]) {
#pragma unroll
  for (int g = 0; g < kKeysPerStep; ++g) {
#pragma unroll
    for (int e = 0; e < PerLane; ++e) {
      const int idx = lane + 32 * e;
      rows[g][e] = idx < d ? from[g][idx] : 0.0f;
    }
  }
}

// The keys of one (query row, head) are cut into `splits` contiguous ranges, one block each; the block's warps take
// every kWarpsPerBlock-th key of the range, then join their online-softmax states in shared memory. With one split
// the block writes the normalised output; with more it writes its (max, total, unnormalised sum) for
// combine_splits_kernel. Splitting is what keeps a decode step's few (row, head) tasks from running on a handful of
// warps that walk the whole context one dependent key at a time.
template <bool Paged, int PerLane>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    attention_kernel(const float* __restrict__ q, int64_t rows, int64_t heads, int64_t kv_heads, int d,
                     const float* __restrict__ keys, const float* __restrict__ values, int64_t block_size,
                     StepMeta step, MaskParams spec, int splits, float* __restrict__ partials,
                     float* __restrict__ out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int64_t task = blockIdx.x;
  const int split = static_cast<int>(blockIdx.y);
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
  const int64_t per_split = (hi - lo + splits - 1) / splits;
  const int64_t split_lo = lo + split * per_split;
  const int64_t split_hi = min(hi, split_lo + per_split);

  const float* qh = q + task * d;
  float qv[PerLane], acc[PerLane];
#pragma unroll
  for (int e = 0; e < PerLane; ++e) {
    const int idx = lane + 32 * e;
    qv[e] = idx < d ? qh[idx] : 0.0f;
    acc[e] = 0.0f;
  }
  float running_max = -INFINITY, total = 0.0f;
  // kKeysPerStep keys per warp at a time: their table entries, keys and values are loaded before any is used, so a
  // warp has that many independent loads in flight instead of walking one dependent key at a time.
  for (int64_t j0 = split_lo + int64_t{warp} * kKeysPerStep; j0 < split_hi; j0 += kWarpsPerBlock * kKeysPerStep) {
    const float* kv[kKeysPerStep];
    const float* vv[kKeysPerStep];
    bool visible[kKeysPerStep];
#pragma unroll
    for (int g = 0; g < kKeysPerStep; ++g) {
      const int64_t j = j0 + g;
      bool seen = j < split_hi && j >= base_lo && j < base_hi;
      for (int s = 0; !seen && j < split_hi && j >= span_floor && s < span_count; ++s) {
        seen = spans[2 * s] <= qi && qi < spans[2 * s + 1] && spans[2 * s] <= j && j < spans[2 * s + 1];
      }
      visible[g] = seen;
      const int64_t jj = seen ? j : split_lo;  // any valid key; its weight is zero
      int64_t offset;
      if constexpr (Paged) {
        const int64_t block = step.tables[seq.table_begin + jj / block_size];
        offset = ((block * kv_heads + kvh) * block_size + jj % block_size) * d;
      } else {
        offset = ((seq.token_offset + jj) * kv_heads + kvh) * d;
      }
      kv[g] = keys + offset;
      vv[g] = values + offset;
    }
    float rows[kKeysPerStep][PerLane];
    load_lane_elements(kv, lane, d, rows);
    float logit[kKeysPerStep];
#pragma unroll
    for (int g = 0; g < kKeysPerStep; ++g) {
      float dot = 0.0f;
#pragma unroll
      for (int e = 0; e < PerLane; ++e) dot = fmaf(qv[e], rows[g][e], dot);
      logit[g] = dot;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
#pragma unroll
      for (int g = 0; g < kKeysPerStep; ++g) logit[g] += __shfl_xor_sync(0xFFFFFFFFu, logit[g], offset);
    }
    float step_max = running_max;
#pragma unroll
    for (int g = 0; g < kKeysPerStep; ++g) {
      float l = logit[g] * spec.scale;
      if (spec.softcap > 0) l = spec.softcap * tanhf(l / spec.softcap);
      logit[g] = l;
      if (visible[g]) step_max = fmaxf(step_max, l);
    }
    if (step_max == -INFINITY) continue;  // no visible key in this step
    load_lane_elements(vv, lane, d, rows);
    const float correction = expf(running_max - step_max);  // 0 while running_max is −inf
    total *= correction;
#pragma unroll
    for (int e = 0; e < PerLane; ++e) acc[e] *= correction;
#pragma unroll
    for (int g = 0; g < kKeysPerStep; ++g) {
      const float p = visible[g] ? expf(logit[g] - step_max) : 0.0f;
      total += p;
#pragma unroll
      for (int e = 0; e < PerLane; ++e) acc[e] = fmaf(p, rows[g][e], acc[e]);
    }
    running_max = step_max;
  }

  // Join the warps: rescale each warp's state to the block's max (a warp that saw no key has max −inf and weight 0).
  __shared__ float warp_max[kWarpsPerBlock], warp_total[kWarpsPerBlock];
  __shared__ float warp_acc[kWarpsPerBlock][kMaxHeadDim];
  if (lane == 0) {
    warp_max[warp] = running_max;
    warp_total[warp] = total;
  }
#pragma unroll
  for (int e = 0; e < PerLane; ++e) {
    const int idx = lane + 32 * e;
    if (idx < d) warp_acc[warp][idx] = acc[e];
  }
  __syncthreads();
  float block_max = -INFINITY;
  for (int w = 0; w < kWarpsPerBlock; ++w) block_max = fmaxf(block_max, warp_max[w]);
  float weight[kWarpsPerBlock];
  float block_total = 0.0f;
  for (int w = 0; w < kWarpsPerBlock; ++w) {
    weight[w] = warp_max[w] == -INFINITY ? 0.0f : expf(warp_max[w] - block_max);
    block_total += warp_total[w] * weight[w];
  }
  // One split: the normalised output. Several: this split's (max, total, unnormalised sum) for combine_splits_kernel.
  float* partial = splits > 1 ? partials + (task * splits + split) * (d + 2) : nullptr;
  float* dst = splits == 1 ? out + task * d : partial + 2;
  const float factor = splits > 1 ? 1.0f : block_total > 0 ? 1.0f / block_total : 0.0f;
  if (splits > 1 && threadIdx.x == 0) {
    partial[0] = block_max;
    partial[1] = block_total;
  }
  for (int idx = static_cast<int>(threadIdx.x); idx < d; idx += kWarpsPerBlock * 32) {
    float sum = 0.0f;
    for (int w = 0; w < kWarpsPerBlock; ++w) sum += warp_acc[w][idx] * weight[w];
    dst[idx] = sum * factor;
  }
}

// out[task] = the splits' partial states joined: Σ sum_s · e^(max_s − M) / Σ total_s · e^(max_s − M).
__global__ void combine_splits_kernel(const float* __restrict__ partials, int splits, int d, float* __restrict__ out) {
  __shared__ float weight[kMaxSplits];
  __shared__ float inv_total;
  const int64_t task = blockIdx.x;
  const float* first = partials + task * splits * (d + 2);
  if (threadIdx.x == 0) {
    float block_max = -INFINITY;
    for (int s = 0; s < splits; ++s) block_max = fmaxf(block_max, first[s * (d + 2)]);
    float total = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float m = first[s * (d + 2)];
      weight[s] = m == -INFINITY ? 0.0f : expf(m - block_max);
      total += first[s * (d + 2) + 1] * weight[s];
    }
    inv_total = total > 0 ? 1.0f / total : 0.0f;
  }
  __syncthreads();
  for (int idx = static_cast<int>(threadIdx.x); idx < d; idx += blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum = fmaf(first[s * (d + 2) + 2 + idx], weight[s], sum);
    out[task * d + idx] = sum * inv_total;
  }
}

}  // namespace

void kv_append(Stream stream, const float* k, const float* v, const StepMeta& step, int64_t tokens, int64_t kv_heads,
               int64_t d, int64_t block_size, float* key_arena, float* value_arena) {
  const int64_t total = tokens * kv_heads * d;
  if (total == 0) return;
  kv_append_kernel<<<static_cast<unsigned>((total + 255) / 256), 256, 0, stream>>>(k, v, step, tokens, kv_heads, d,
                                                                                   block_size, key_arena, value_arena);
}

void attention(Stream stream, bool paged, const float* q, int64_t rows, int64_t heads, int64_t kv_heads, int d,
               const float* keys, const float* values, int64_t block_size, const StepMeta& step, const MaskParams& mask,
               int splits, float* partials, float* out) {
  if (rows * heads == 0) return;
  const dim3 grid(static_cast<unsigned>(rows * heads), static_cast<unsigned>(splits));
  // Head-dim elements per lane: the smallest register footprint that covers d.
  const auto launch = [&]<bool Paged, int PerLane>() {
    attention_kernel<Paged, PerLane><<<grid, kWarpsPerBlock * 32, 0, stream>>>(
        q, rows, heads, kv_heads, d, keys, values, block_size, step, mask, splits, partials, out);
  };
  const auto with_width = [&]<bool Paged>() {
    if (d <= 128) {
      launch.template operator()<Paged, 4>();
    } else if (d <= 256) {
      launch.template operator()<Paged, 8>();
    } else {
      launch.template operator()<Paged, kMaxHeadDim / 32>();
    }
  };
  if (paged) {
    with_width.template operator()<true>();
  } else {
    with_width.template operator()<false>();
  }
  if (splits > 1) {
    combine_splits_kernel<<<static_cast<unsigned>(rows * heads), 128, 0, stream>>>(partials, splits, d, out);
  }
}

}  // namespace loom::backend::cuda::kernels
