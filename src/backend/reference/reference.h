#pragma once
// Plain scalar definitions of every backend op, written for clarity rather than speed: double accumulation, no
// blocking, no threads, formulas as the model code of the reference implementation spells them. Tests check each
// optimised kernel against these on random inputs; nothing in the serving path calls them.
//
// Layouts match the Backend contract (backend.h); arrays are plain spans so a test can build inputs without tensors.

#include <cstdint>
#include <span>
#include <vector>

#include "backend/batch.h"
#include "backend/ops.h"
#include "backend/rope_table.h"
#include "weights/weight.h"

namespace loom::backend::reference {

// Element `index` of a float weight (F32, F16 or BF16), decoded from its bit pattern by the IEEE definitions.
float float_element(const weights::Weight& w, int64_t index);

// out [ids, cols] = rows of w times scale.
std::vector<float> embedding(const weights::Weight& w, std::span<const int32_t> ids, float scale);
// The vocab-parallel lookup: w holds rows [first_id, first_id + w.rows); other ids give zero rows.
std::vector<float> embedding_shard(const weights::Weight& w, std::span<const int32_t> ids, int64_t first_id,
                                   float scale);
// out [n, w.rows] = x [n, w.cols] · wᵀ, accumulated in double.
std::vector<float> matmul(std::span<const float> x, int64_t n, const weights::Weight& w);

// Norms over rows of length `dim`; `weight` empty for NormWeight::kNone.
std::vector<float> rms_norm(std::span<const float> x, int64_t dim, std::span<const float> weight,
                            const RmsNormSpec& spec);
std::vector<float> layer_norm(std::span<const float> x, int64_t dim, std::span<const float> weight,
                              std::span<const float> bias, float eps);

double activation(Activation act, double x);
double softcap(double x, double cap);

// RoPE from the spec by the reference's formula: per-axis angle tables (fp32 angles, as the reference's fp32 matmul
// forms them), merged per variant, then x·cos + rotate_half(x)·sin on each rotated block in double. x [tokens, heads,
// head_dim] in place; positions [axes, tokens].
void rope(std::span<float> x, int64_t tokens, int64_t heads, const RopeSpec& spec, std::span<const int32_t> positions);

// The mask as a predicate: may query token q (sequence index) see key token k?
bool mask_allows(const AttentionSpec& spec, std::span<const TokenRange> spans, int64_t q, int64_t k);

// Dense attention of one sequence: q [tq, heads, d] are tokens q_start … q_start+tq−1; k, v [tk, kv_heads, d] are
// tokens 0 … tk−1. Masked-out keys are skipped; a row with no visible key is zero.
std::vector<float> attention(std::span<const float> q, std::span<const float> k, std::span<const float> v, int64_t tq,
                             int64_t tk, int64_t q_start, int heads, int kv_heads, int d,
                             std::span<const TokenRange> spans, const AttentionSpec& spec);

std::vector<float> softmax(std::span<const float> x, int64_t n);
std::vector<int32_t> argmax(std::span<const float> x, int64_t n);
// Per row: the k (index, value) pairs of a full stable sort by value descending.
void top_k(std::span<const float> x, int64_t n, int k, std::vector<int32_t>& indices, std::vector<float>& values);

std::vector<float> avg_pool_2d(std::span<const float> x, int64_t grid_h, int64_t grid_w, int64_t channels, int kernel);
std::vector<float> extract_patches(std::span<const float> image, int64_t channels, int64_t height, int64_t width,
                                   int patch);

}  // namespace loom::backend::reference
