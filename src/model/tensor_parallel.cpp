#include "model/tensor_parallel.h"

#include <cstring>

#include "core/error.h"

namespace loom::model {

ShardRange even_shard(const Sharding& sharding, int64_t total, std::string_view what) {
  const int n = sharding.ranks();
  if (total % n != 0) {
    fail(ErrorKind::kUnsupported, "tensor parallelism over {} ranks needs {} ({}) to divide by {}", n, what, total, n);
  }
  const int64_t count = total / n;
  return {sharding.rank() * count, count};
}

ShardRange vocab_shard(const Sharding& sharding, int64_t vocab) {
  const int n = sharding.ranks();
  const int64_t count = (vocab + n - 1) / n;
  return {sharding.rank() * count, count};
}

HeadShard shard_heads(const Sharding& sharding, int heads, int kv_heads, std::string_view where) {
  const int n = sharding.ranks(), r = sharding.rank();
  if (heads % n != 0 || kv_heads <= 0 || heads % kv_heads != 0) {
    fail(ErrorKind::kUnsupported, "{}: {} attention heads ({} KV heads) do not split over {} tensor-parallel ranks",
         where, heads, kv_heads, n);
  }
  HeadShard s;
  s.heads = heads / n;
  s.head_begin = int64_t{r} * s.heads;
  if (kv_heads % n == 0) {
    s.kv_heads = kv_heads / n;
    s.kv_begin = int64_t{r} * s.kv_heads;
  } else if (n % kv_heads == 0) {
    // Fewer KV heads than ranks: each rank's query heads fall in one KV group; that head is kept on every rank of
    // the group.
    s.kv_heads = 1;
    s.kv_begin = s.head_begin / (heads / kv_heads);
  } else {
    fail(ErrorKind::kUnsupported,
         "{}: {} KV heads do not split over {} tensor-parallel ranks (they must divide by the ranks, or the ranks by "
         "them)",
         where, kv_heads, n);
  }
  return s;
}

Linear load_column_parallel(const WeightLoader& loader, const std::string& module, int64_t rows, int64_t cols,
                            ShardRange part, bool bias) {
  Linear l;
  const bool whole = part.begin == 0 && part.count == rows;
  l.weight = whole ? loader.matrix(module, rows, cols) : loader.matrix_rows(module, rows, cols, part.begin, part.count);
  if (bias) {
    l.bias =
        whole ? loader.f32(module + ".bias", {rows}) : loader.f32_slice(module + ".bias", rows, part.begin, part.count);
  }
  return l;
}

Linear load_row_parallel(const WeightLoader& loader, const std::string& module, int64_t rows, int64_t cols,
                         ShardRange part, bool bias) {
  Linear l;
  const bool whole = part.begin == 0 && part.count == cols;
  l.weight = whole ? loader.matrix(module, rows, cols) : loader.matrix_cols(module, rows, cols, part.begin, part.count);
  if (bias) l.bias = loader.f32(module + ".bias", {rows});
  return l;
}

weights::Weight load_vocab_table(const WeightLoader& loader, const Sharding& sharding, const std::string& module,
                                 int64_t vocab, int64_t cols) {
  if (!sharding.active()) return loader.matrix(module, vocab, cols);
  const ShardRange part = vocab_shard(sharding, vocab);
  return loader.matrix_rows(module, vocab, cols, part.begin, part.count);
}

void shard_expert(GatedMlpWeights& expert, ShardRange part, std::string_view name) {
  expert.gate.weight = weight_rows(expert.gate.weight, part.begin, part.count, name);
  expert.up.weight = weight_rows(expert.up.weight, part.begin, part.count, name);
  expert.down.weight = weight_cols(expert.down.weight, part.begin, part.count, name);
}

void all_reduce(const Sharding& sharding, Tensor& x) {
  if (sharding.active()) sharding.comm->all_reduce_sum(x);
}

void embed_tokens(backend::Backend& backend, const Sharding& sharding, const weights::Weight& table, int64_t vocab,
                  std::span<const int32_t> ids, float scale, Tensor& out) {
  if (!sharding.active()) {
    backend.embedding(table, ids, scale, out);
    return;
  }
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab) {
      fail(ErrorKind::kInvalidRequest, "[embedding] token id {} outside the vocabulary of {}", id, vocab);
    }
  }
  backend.embedding_shard(table, ids, vocab_shard(sharding, vocab).begin, scale, out);
  // Every id is in exactly one rank's range; the others contribute +0, so the sum is that rank's row exactly.
  sharding.comm->all_reduce_sum(out);
}

Tensor lm_head_logits(backend::Backend& backend, const Sharding& sharding, const weights::Weight& lm_head,
                      int64_t vocab, const Tensor& rows, float softcap, Scratch& scratch) {
  const int64_t n = rows.dim(0);
  // On the host backend the logits leave as they are, so they get their own storage rather than a scratch buffer
  // the next step overwrites.
  const bool stays_on_device = !sharding.active() && backend.device().kind != DeviceKind::kCpu;
  Tensor local = stays_on_device ? scratch.get(Slot::kLogits, {n, lm_head.rows})
                                 : backend.allocate(DType::kF32, {n, lm_head.rows});
  backend.matmul(rows, lm_head, local);
  if (softcap > 0) backend.softcap(local, softcap, local);
  if (!sharding.active()) return local;
  const int64_t width = lm_head.rows * sharding.ranks();
  Tensor gathered = backend.allocate(DType::kF32, {n, width});
  sharding.comm->all_gather_columns(local, gathered);
  Tensor host = backend.to_host(gathered);
  if (width == vocab) return host;
  // The padded rows of the last shard produced columns past the vocabulary.
  Tensor logits = Tensor::zeros(DType::kF32, {n, vocab});
  for (int64_t r = 0; r < n; ++r) {
    std::memcpy(logits.data_as<float>() + r * vocab, host.data_as<float>() + r * width,
                static_cast<size_t>(vocab) * sizeof(float));
  }
  return logits;
}

}  // namespace loom::model
