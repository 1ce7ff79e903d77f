#include "model/layers.h"

#include <algorithm>

#include "core/error.h"

namespace loom::model {

Tensor Scratch::get(Slot slot, Shape shape) {
  Tensor& buffer = buffers_[static_cast<size_t>(slot)];
  const int64_t needed = shape_elements(shape);
  if (buffer.empty() || buffer.elements() < needed) {
    // Grow by at least half so that a slowly growing prefill does not reallocate every step.
    const int64_t size = buffer.empty() ? needed : std::max(needed, buffer.elements() + buffer.elements() / 2);
    buffer = backend_ != nullptr ? backend_->allocate(DType::kF32, {size}) : Tensor::zeros(DType::kF32, {size});
  }
  return Tensor::borrow(DType::kF32, std::move(shape), buffer.data(), buffer.device());
}

Tensor row_block(const Tensor& t, int64_t begin, int64_t count) {
  if (t.rank() < 1 || begin < 0 || count < 0 || begin + count > t.dim(0)) {
    fail(ErrorKind::kInternal, "[row_block] rows [{}, +{}) of a tensor of shape {}", begin, count,
         shape_string(t.shape()));
  }
  Shape shape = t.shape();
  shape[0] = count;
  const int64_t row_elements = t.dim(0) == 0 ? 0 : t.elements() / t.dim(0);
  const auto row_bytes = static_cast<size_t>(row_elements) * static_cast<size_t>(dtype_bits(t.dtype()) / 8);
  auto* base = static_cast<uint8_t*>(const_cast<void*>(t.data()));
  return Tensor::borrow(t.dtype(), std::move(shape), base + static_cast<size_t>(begin) * row_bytes, t.device());
}

void linear(backend::Backend& backend, const Linear& layer, const Tensor& x, Tensor& out, Scratch* scratch,
            backend::Communicator* reduce) {
  if (layer.clip.clamps_input()) {
    Tensor clamped =
        scratch != nullptr ? scratch->get(Slot::kClampedInput, x.shape()) : Tensor::zeros(DType::kF32, x.shape());
    backend.clamp(x, layer.clip.input_min, layer.clip.input_max, clamped);
    backend.matmul(clamped, layer.weight, out);
  } else {
    backend.matmul(x, layer.weight, out);
  }
  if (reduce != nullptr) reduce->all_reduce_sum(out);
  if (!layer.bias.empty()) backend.add_bias(out, layer.bias);
  if (layer.clip.clamps_output()) backend.clamp(out, layer.clip.output_min, layer.clip.output_max, out);
}

namespace {

struct Projected {
  Tensor q, k, v;  // [T, heads, D] and [T, kv_heads, D]; k, v empty for a shared-KV layer
};

// The q/k/v projections and the per-head norms and RoPE they share between the cached and the dense blocks.
Projected project_qkv(backend::Backend& backend, const AttentionWeights& w, const AttentionParams& p, const Tensor& x,
                      std::span<const int32_t> positions, Scratch& scratch) {
  const int64_t t = x.dim(0);
  Projected out;
  out.q = scratch.get(Slot::kQuery, {t, p.heads, p.head_dim});
  Tensor q2 = out.q.reshaped({t, int64_t{p.heads} * p.head_dim});
  linear(backend, w.q, x, q2, &scratch);
  if (!w.q_norm.empty()) {
    // Norms before RoPE, per head over head_dim.
    Tensor qn = scratch.get(Slot::kQueryNormed, out.q.shape());
    backend.rms_norm(out.q, &w.q_norm, p.qk_norm, qn);
    out.q = qn;
  }
  if (p.rope != nullptr) backend.rope(out.q, *p.rope, positions);
  if (p.shared_kv) return out;

  out.k = scratch.get(Slot::kKey, {t, p.kv_heads, p.head_dim});
  Tensor k2 = out.k.reshaped({t, int64_t{p.kv_heads} * p.head_dim});
  linear(backend, w.k, x, k2, &scratch);
  if (w.v.weight.values.empty()) {
    out.v = out.k;  // values are the raw key projection; the key norm below writes elsewhere
  } else {
    out.v = scratch.get(Slot::kValue, out.k.shape());
    Tensor v2 = out.v.reshaped(k2.shape());
    linear(backend, w.v, x, v2, &scratch);
  }
  if (!w.k_norm.empty()) {
    Tensor kn = scratch.get(Slot::kKeyNormed, out.k.shape());
    backend.rms_norm(out.k, &w.k_norm, p.qk_norm, kn);
    out.k = kn;
  } else if (w.v.weight.values.empty()) {
    fail(ErrorKind::kInternal, "[attention] values shared with keys need a key norm to keep them apart");
  }
  if (p.v_norm) {
    Tensor vn = scratch.get(Slot::kValueNormed, out.v.shape());
    backend.rms_norm(out.v, nullptr, {.eps = p.qk_norm.eps, .weight = backend::NormWeight::kNone}, vn);
    out.v = vn;
  }
  if (p.rope != nullptr) backend.rope(out.k, *p.rope, positions);
  return out;
}

void output_projection(backend::Backend& backend, const AttentionWeights& w, const Tensor& attended, Scratch& scratch,
                       Tensor& out, backend::Communicator* reduce) {
  const Tensor flat = attended.reshaped({attended.dim(0), attended.dim(1) * attended.dim(2)});
  linear(backend, w.o, flat, out, &scratch, reduce);
}

}  // namespace

void attention_block(backend::Backend& backend, const AttentionWeights& w, const AttentionParams& p, const Tensor& x,
                     const backend::Batch& batch, backend::KvCache& cache, int cache_layer, Scratch& scratch,
                     Tensor& out) {
  const int64_t t = x.dim(0);
  if (t != batch.tokens()) {
    fail(ErrorKind::kInternal, "[attention_block] x has {} rows, the batch {} tokens", t, batch.tokens());
  }
  // Axis 0 of the batch positions: one-axis RoPE reads the first T entries.
  const std::span<const int32_t> positions(batch.positions.data(), static_cast<size_t>(t) * batch.position_axes);
  const Projected qkv = project_qkv(backend, w, p, x, positions, scratch);
  if (!p.shared_kv) backend.kv_append(cache, cache_layer, batch, qkv.k, qkv.v);
  Tensor attended = scratch.get(Slot::kAttention, qkv.q.shape());
  backend.attention(qkv.q, cache, cache_layer, batch, p.mask, attended);
  output_projection(backend, w, attended, scratch, out, p.reduce);
}

void dense_attention_block(backend::Backend& backend, const AttentionWeights& w, const AttentionParams& p,
                           const Tensor& x, std::span<const backend::SequenceSlice> sequences, Scratch& scratch,
                           Tensor& out, std::span<const int32_t> positions) {
  if (p.shared_kv) fail(ErrorKind::kInternal, "[dense_attention_block] has no cache to share K/V from");
  const Projected qkv = project_qkv(backend, w, p, x, positions, scratch);
  Tensor attended = scratch.get(Slot::kAttention, qkv.q.shape());
  backend.attention_dense(qkv.q, qkv.k, qkv.v, sequences, p.mask, attended);
  output_projection(backend, w, attended, scratch, out, p.reduce);
}

void gated_mlp(backend::Backend& backend, const GatedMlpWeights& w, backend::Activation act, const Tensor& x,
               Scratch& scratch, Tensor& out, backend::Communicator* reduce) {
  const int64_t t = x.dim(0);
  Tensor gate = scratch.get(Slot::kGate, {t, w.gate.weight.rows});
  Tensor up = scratch.get(Slot::kUp, {t, w.up.weight.rows});
  linear(backend, w.gate, x, gate, &scratch);
  linear(backend, w.up, x, up, &scratch);
  backend.gated_activation(act, gate, up, gate);
  linear(backend, w.down, gate, out, &scratch, reduce);
}

void mlp(backend::Backend& backend, const MlpWeights& w, backend::Activation act, const Tensor& x, Scratch& scratch,
         Tensor& out) {
  Tensor hidden = scratch.get(Slot::kActivated, {x.dim(0), w.fc1.weight.rows});
  linear(backend, w.fc1, x, hidden, &scratch);
  backend.activation(act, hidden, hidden);
  linear(backend, w.fc2, hidden, out, &scratch);
}

void upload(backend::Backend& backend, Tensor& t) {
  if (!t.empty()) t = backend.upload(t);
}

void upload(backend::Backend& backend, Linear& layer) {
  // An absent projection (Gemma 4's KV-shared layers, k_eq_v) stays empty.
  if (!layer.weight.values.empty()) layer.weight = backend.upload(layer.weight);
  upload(backend, layer.bias);
}

void upload(backend::Backend& backend, AttentionWeights& w) {
  for (Linear* l : {&w.q, &w.k, &w.v, &w.o}) upload(backend, *l);
  upload(backend, w.q_norm);
  upload(backend, w.k_norm);
}

void upload(backend::Backend& backend, GatedMlpWeights& w) {
  for (Linear* l : {&w.gate, &w.up, &w.down}) upload(backend, *l);
}

void upload(backend::Backend& backend, MlpWeights& w) {
  upload(backend, w.fc1);
  upload(backend, w.fc2);
}

}  // namespace loom::model
