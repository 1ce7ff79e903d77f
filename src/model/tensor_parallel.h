#pragma once
// Tensor parallelism inside the families (DESIGN.md §8, docs/TENSOR_PARALLEL.md): which part of each weight a rank
// holds, and the joins that make every rank's forward pass return the full logits.
//   - column-parallel (q/k/v, gate/up, MoE experts' gate/up): rank r holds rows [r·n/N, (r+1)·n/N) of W and its bias;
//   - row-parallel (o, down, experts' down): the matching columns; the partial products are all-reduced, and the
//     bias is added once after the reduce (layers.h: linear's `reduce`);
//   - vocab-parallel embedding and lm_head: ceil(vocab/N) rows per rank (the last shard padded with zero rows); the
//     embedding all-reduces rows each rank looked up (zeros for ids outside its range), the logits are gathered by
//     columns and trimmed to the vocabulary;
//   - everything else (norms, routers, vision towers, projectors, Gemma 4's per-layer embeddings) is replicated.
// With a default Sharding every helper here does exactly what the unsharded code did.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "model/layers.h"
#include "model/sharding.h"
#include "model/weight_loader.h"

namespace loom::model {

struct ShardRange {
  int64_t begin = 0;
  int64_t count = 0;
};

// `total` split evenly over the ranks. Throws kUnsupported naming `what` unless the ranks divide it.
ShardRange even_shard(const Sharding& sharding, int64_t total, std::string_view what);

// Vocabulary rows of this rank: ceil(vocab / N) each, so every rank's logits have the same width; the last rank's
// range may run past the vocabulary (those rows load as zeros).
ShardRange vocab_shard(const Sharding& sharding, int64_t vocab);

// One attention layer's heads on this rank.
struct HeadShard {
  int heads = 0;           // query heads of this rank
  int kv_heads = 0;        // KV heads this rank stores (ModelInfo::kv lists these)
  int64_t head_begin = 0;  // first global query head
  int64_t kv_begin = 0;    // first global KV head
};

// heads / N query heads per rank; kv_heads / N KV heads when N divides kv_heads, else (kv_heads < N and a divisor of
// N) the one KV head this rank's query heads read, replicated. Anything else throws kUnsupported naming `where`.
HeadShard shard_heads(const Sharding& sharding, int heads, int kv_heads, std::string_view where);

// The communicator row-parallel layers reduce over: nullptr when not sharded.
inline backend::Communicator* reducer(const Sharding& sharding) {
  return sharding.active() ? sharding.comm : nullptr;
}

// A column-parallel Linear's part: rows `part` of `<module>.weight` [rows, cols] (and of `<module>.bias`).
Linear load_column_parallel(const WeightLoader& loader, const std::string& module, int64_t rows, int64_t cols,
                            ShardRange part, bool bias = false);
// A row-parallel Linear's part: columns `part` of the weight, and the whole bias (added after the all-reduce).
Linear load_row_parallel(const WeightLoader& loader, const std::string& module, int64_t rows, int64_t cols,
                         ShardRange part, bool bias = false);
// A vocabulary table [vocab, cols] (embedding or lm_head): this rank's vocab_shard rows, padded with zero rows.
weights::Weight load_vocab_table(const WeightLoader& loader, const Sharding& sharding, const std::string& module,
                                 int64_t vocab, int64_t cols);

// MoE experts loaded whole: each expert's gate/up become their rows `part`, its down its columns `part`.
void shard_expert(GatedMlpWeights& expert, ShardRange part, std::string_view name);

// x ← Σ over ranks (nothing when not sharded).
void all_reduce(const Sharding& sharding, Tensor& x);

// out [ids, hidden] = the token embeddings · scale. Sharded: `table` is this rank's vocab_shard; ids outside
// [0, vocab) throw kInvalidRequest, each rank looks up its range and the rows are all-reduced.
void embed_tokens(backend::Backend& backend, const Sharding& sharding, const weights::Weight& table, int64_t vocab,
                  std::span<const int32_t> ids, float scale, Tensor& out);

// F32 logits [rows, vocab] = softcap(rows · lm_headᵀ) (no softcap when softcap ≤ 0). Not sharded, on a device
// backend: in backend memory, in `scratch` slot kLogits (StepRunner brings them to the host); otherwise in host memory,
// newly allocated. Sharded: `lm_head` is this rank's vocab_shard; every rank gets the full logits.
Tensor lm_head_logits(backend::Backend& backend, const Sharding& sharding, const weights::Weight& lm_head,
                      int64_t vocab, const Tensor& rows, float softcap, Scratch& scratch);

}  // namespace loom::model
