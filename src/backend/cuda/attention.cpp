// Argument checks, step metadata and launches of kv_append, paged attention and dense attention (kernels and their
// design in attention_kernels.cu).
#include <vector>

#include "backend/cuda/common.h"
#include "backend/cuda/kernels.h"

namespace loom::backend::cuda {
namespace {

using kernels::kMaxHeadDim;
using kernels::MaskParams;
using kernels::SeqMeta;
using kernels::StepMeta;

StepMeta upload_step(std::span<const SequenceSlice> sequences, int64_t tokens, MetaRing& buffer) {
  std::vector<SeqMeta> seqs;
  std::vector<int32_t> row_seq(static_cast<size_t>(tokens), 0);
  std::vector<int32_t> tables;
  std::vector<int64_t> spans;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const SequenceSlice& seq = sequences[s];
    seqs.push_back({seq.token_offset, seq.token_count, seq.kv_start, static_cast<int32_t>(tables.size()),
                    static_cast<int32_t>(spans.size() / 2), static_cast<int32_t>(seq.bidirectional_spans.size()), 0});
    tables.insert(tables.end(), seq.block_table.begin(), seq.block_table.end());
    for (const TokenRange& r : seq.bidirectional_spans) {
      spans.push_back(r.start);
      spans.push_back(r.end);
    }
    for (int64_t t = 0; t < seq.token_count; ++t)
      row_seq[static_cast<size_t>(seq.token_offset + t)] = static_cast<int32_t>(s);
  }
  MetaUpload meta;
  const size_t a = meta.add(std::span<const SeqMeta>(seqs));
  const size_t b = meta.add(std::span<const int32_t>(row_seq));
  const size_t c = meta.add(std::span<const int32_t>(tables));
  const size_t d = meta.add(std::span<const int64_t>(spans));
  const uint8_t* base = meta.commit(buffer);
  return {at<SeqMeta>(base, a), at<int32_t>(base, b), at<int32_t>(base, c), at<int64_t>(base, d)};
}

void check_q(const Tensor& q, const Tensor& out, int64_t kv_heads, int64_t d, int64_t tokens, std::string_view op) {
  expect_f32(q, op, "q");
  expect_f32(out, op, "out");
  if (q.rank() != 3 || q.dim(0) != tokens || q.dim(2) != d || q.dim(1) % kv_heads != 0) {
    fail(ErrorKind::kInternal, "[{}] q has shape {}, expected [{}, a multiple of {} heads, {}]", op,
         shape_string(q.shape()), tokens, kv_heads, d);
  }
  expect_same_shape(q, out, op, "out");
  if (d > kMaxHeadDim) fail(ErrorKind::kUnsupported, "[{}] head_dim {} exceeds {}", op, d, kMaxHeadDim);
}

void expect_device_cache(const KvCache& cache, std::string_view op) {
  if (cache.device().kind != DeviceKind::kCuda) {
    fail(ErrorKind::kInternal, "[{}] the KV cache is not in CUDA device memory (allocate it through the backend)", op);
  }
}

MaskParams mask_params(const AttentionSpec& spec) {
  return {spec.scale, static_cast<int>(spec.mask), spec.window, spec.logit_softcap, static_cast<int>(spec.spans)};
}

void launch_attention(bool paged, const Tensor& q, int64_t kv_heads, const float* keys, const float* values,
                      int64_t block_size, const StepMeta& step, const AttentionSpec& spec, Tensor& out,
                      std::string_view op) {
  kernels::attention(paged, q.data_as<float>(), q.dim(0), q.dim(1), kv_heads, static_cast<int>(q.dim(2)), keys, values,
                     block_size, step, mask_params(spec), out.data_as<float>());
  check_launch(op);
}

}  // namespace

void CudaBackend::kv_append(KvCache& cache, int layer, const Batch& batch, const Tensor& k, const Tensor& v) {
  expect_device_cache(cache, "kv_append");
  const KvLayerShape& shape = cache.layer_shape(layer);
  batch.validate(cache.block_size());
  expect_f32(k, "kv_append", "k");
  expect_f32(v, "kv_append", "v");
  expect_shape(k, {batch.tokens(), shape.kv_heads, shape.head_dim}, "kv_append", "k");
  expect_shape(v, {batch.tokens(), shape.kv_heads, shape.head_dim}, "kv_append", "v");
  if (batch.tokens() == 0) return;
  const StepMeta step = upload_step(batch.sequences, batch.tokens(), state_->meta);
  kernels::kv_append(k.data_as<float>(), v.data_as<float>(), step, batch.tokens(), shape.kv_heads, shape.head_dim,
                     cache.block_size(), cache.keys(layer, 0), cache.values(layer, 0));
  check_launch("kv_append");
}

void CudaBackend::attention(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                            const AttentionSpec& spec, Tensor& out) {
  expect_device_cache(cache, "attention");
  const KvLayerShape& shape = cache.layer_shape(layer);
  batch.validate(cache.block_size());
  check_q(q, out, shape.kv_heads, shape.head_dim, batch.tokens(), "attention");
  const StepMeta step = upload_step(batch.sequences, batch.tokens(), state_->meta);
  launch_attention(true, q, shape.kv_heads, cache.keys(layer, 0), cache.values(layer, 0), cache.block_size(), step,
                   spec, out, "attention");
}

void CudaBackend::attention_dense(const Tensor& q, const Tensor& k, const Tensor& v,
                                  std::span<const SequenceSlice> sequences, const AttentionSpec& spec, Tensor& out) {
  expect_f32(k, "attention_dense", "k");
  expect_f32(v, "attention_dense", "v");
  if (k.rank() != 3) fail(ErrorKind::kInternal, "[attention_dense] k has shape {}", shape_string(k.shape()));
  expect_same_shape(k, v, "attention_dense", "v");
  const int64_t tokens = k.dim(0);
  check_q(q, out, k.dim(1), k.dim(2), tokens, "attention_dense");
  int64_t next = 0;
  for (const SequenceSlice& seq : sequences) {
    if (seq.token_offset != next || seq.token_count <= 0 || seq.kv_start != 0) {
      fail(ErrorKind::kInternal, "[attention_dense] sequences must tile the rows in order with kv_start 0");
    }
    next += seq.token_count;
  }
  if (next != tokens) fail(ErrorKind::kInternal, "[attention_dense] sequences cover {} of {} rows", next, tokens);
  const StepMeta step = upload_step(sequences, tokens, state_->meta);
  launch_attention(false, q, k.dim(1), k.data_as<float>(), v.data_as<float>(), 0, step, spec, out, "attention_dense");
}

}  // namespace loom::backend::cuda
