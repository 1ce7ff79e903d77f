// Argument checks, step metadata and launches of kv_append, paged attention and dense attention (kernels and their
// design in attention_kernels.cu).
#include <algorithm>
#include <vector>

#include "backend/cuda/common.h"
#include "backend/cuda/kernels.h"

namespace loom::backend::cuda {
namespace {

using kernels::kMaxHeadDim;
using kernels::MaskParams;
using kernels::SeqMeta;
using kernels::StepMeta;

StepMeta upload_step(std::span<const SequenceSlice> sequences, int64_t tokens, MetaRing& ring) {
  MetaUpload meta;
  const PackedStep packed = pack_step_meta(meta, sequences, tokens);
  return resolve(meta.commit(ring), packed);
}

// The bound step's metadata when `batch` is the bound one (uploaded once per step), else a fresh upload.
StepMeta step_meta(const Batch& batch, CudaBackend::State& state) {
  if (state.step.batch == &batch) return state.step.meta;
  return upload_step(batch.sequences, batch.tokens(), state.meta);
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

// Keys one split should have at least: below this, joining the splits costs more than walking the keys.
constexpr int64_t kKeysPerSplit = 64;

// Splits of each (row, head)'s keys: enough blocks to fill the GPU several times over when a step has few rows
// (decode), none when it has many (prefill), and no more than the context has keys for. `context` bounds every
// sequence's keys: for the bound step it is its block-table capacity in tokens, fixed for every step a recorded
// graph replays, so the split count (part of the recording) stays right as the sequences grow.
int attention_splits(int64_t tasks, int multiprocessors, int64_t context) {
  const int64_t to_fill = (int64_t{4} * multiprocessors + tasks - 1) / tasks;
  const int64_t to_share = (context + kKeysPerSplit - 1) / kKeysPerSplit;
  return static_cast<int>(std::clamp<int64_t>(std::min(to_fill, to_share), 1, kernels::kMaxSplits));
}

// The longest sequence's keys in this step (or its bound upper limit, see attention_splits).
int64_t step_context(std::span<const SequenceSlice> sequences, const CudaBackend::State& state, const Batch* batch,
                     int64_t block_size) {
  if (batch != nullptr && state.step.batch == batch) return state.step.table_capacity * block_size;
  int64_t longest = 0;
  for (const SequenceSlice& seq : sequences) longest = std::max(longest, seq.kv_start + seq.token_count);
  return longest;
}

void launch_attention(CudaBackend::State& state, bool paged, const Tensor& q, int64_t kv_heads, const float* keys,
                      const float* values, int64_t block_size, const StepMeta& step, int64_t context,
                      const AttentionSpec& spec, Tensor& out, std::string_view op) {
  const int64_t tasks = q.dim(0) * q.dim(1);
  const auto d = static_cast<int>(q.dim(2));
  const int splits = attention_splits(tasks, state.multiprocessors, context);
  float* partials = nullptr;
  if (splits > 1) {
    const auto floats = static_cast<size_t>(tasks * splits * (d + 2));
    partials = static_cast<float*>(state.attention_partials.reserve(floats * sizeof(float)));
  }
  kernels::attention(state.stream, paged, q.data_as<float>(), q.dim(0), q.dim(1), kv_heads, d, keys, values, block_size,
                     step, mask_params(spec), splits, partials, out.data_as<float>());
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
  const StepMeta step = step_meta(batch, *state_);
  kernels::kv_append(state_->stream, k.data_as<float>(), v.data_as<float>(), step, batch.tokens(), shape.kv_heads,
                     shape.head_dim, cache.block_size(), cache.keys(layer, 0), cache.values(layer, 0));
  check_launch("kv_append");
}

void CudaBackend::attention(const Tensor& q, const KvCache& cache, int layer, const Batch& batch,
                            const AttentionSpec& spec, Tensor& out) {
  expect_device_cache(cache, "attention");
  const KvLayerShape& shape = cache.layer_shape(layer);
  batch.validate(cache.block_size());
  check_q(q, out, shape.kv_heads, shape.head_dim, batch.tokens(), "attention");
  const StepMeta step = step_meta(batch, *state_);
  const int64_t context = step_context(batch.sequences, *state_, &batch, cache.block_size());
  launch_attention(*state_, true, q, shape.kv_heads, cache.keys(layer, 0), cache.values(layer, 0), cache.block_size(),
                   step, context, spec, out, "attention");
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
  const int64_t context = step_context(sequences, *state_, nullptr, 0);
  launch_attention(*state_, false, q, k.dim(1), k.data_as<float>(), v.data_as<float>(), 0, step, context, spec, out,
                   "attention_dense");
}

}  // namespace loom::backend::cuda

namespace loom::backend::cuda {

PackedStep pack_step_meta(MetaUpload& upload, std::span<const SequenceSlice> sequences, int64_t tokens,
                          int64_t table_capacity) {
  std::vector<SeqMeta> seqs;
  std::vector<int32_t> row_seq(static_cast<size_t>(tokens), 0);
  std::vector<int32_t> tables;
  std::vector<int64_t> spans;
  if (table_capacity > 0) tables.assign(sequences.size() * static_cast<size_t>(table_capacity), 0);
  for (size_t s = 0; s < sequences.size(); ++s) {
    const SequenceSlice& seq = sequences[s];
    const auto table_size = static_cast<int64_t>(seq.block_table.size());
    int32_t table_begin = static_cast<int32_t>(tables.size());
    if (table_capacity > 0) {
      if (table_size > table_capacity) {
        fail(ErrorKind::kInternal, "[step] a block table of {} entries exceeds the capacity {}", table_size,
             table_capacity);
      }
      table_begin = static_cast<int32_t>(static_cast<int64_t>(s) * table_capacity);
      std::copy(seq.block_table.begin(), seq.block_table.end(), tables.begin() + table_begin);
    } else {
      tables.insert(tables.end(), seq.block_table.begin(), seq.block_table.end());
    }
    seqs.push_back({seq.token_offset, seq.token_count, seq.kv_start, table_begin,
                    static_cast<int32_t>(spans.size() / 2), static_cast<int32_t>(seq.bidirectional_spans.size()), 0});
    for (const TokenRange& r : seq.bidirectional_spans) {
      spans.push_back(r.start);
      spans.push_back(r.end);
    }
    for (int64_t t = 0; t < seq.token_count; ++t)
      row_seq[static_cast<size_t>(seq.token_offset + t)] = static_cast<int32_t>(s);
  }
  PackedStep packed;
  packed.seqs = upload.add(std::span<const SeqMeta>(seqs));
  packed.row_seq = upload.add(std::span<const int32_t>(row_seq));
  packed.tables = upload.add(std::span<const int32_t>(tables));
  packed.spans = upload.add(std::span<const int64_t>(spans));
  return packed;
}

}  // namespace loom::backend::cuda
