#pragma once
// One forward step's worth of work: the tokens of several sequences packed row after row (prefill chunks and single
// decode tokens mixed), with what each sequence needs to find its keys in the paged KV cache. Every op that works on
// tokens sees rows [0, tokens); attention uses the per-sequence slices to know which rows belong together.

#include <cstdint>
#include <vector>

namespace loom::backend {

// A half-open range [start, end) of a sequence's token indices (0 = the sequence's first token ever).
struct TokenRange {
  int64_t start = 0;
  int64_t end = 0;
  bool operator==(const TokenRange&) const = default;
};

struct SequenceSlice {
  int64_t token_offset = 0;  // first packed row of this sequence in the step
  int64_t token_count = 0;   // rows it owns: a prefill chunk, or 1 for a decode step
  int64_t kv_start = 0;      // tokens of this sequence already in the cache; row i is token kv_start + i
  // Cache blocks holding tokens [b·block_size, (b+1)·block_size) of this sequence, for every layer.
  std::vector<int32_t> block_table{};
  // Ranges attending to each other in both directions (Gemma image soft tokens at prefill), OR-ed onto the layer's
  // causal or sliding mask. A range must lie entirely within the cache once this step's keys are appended.
  std::vector<TokenRange> bidirectional_spans{};
};

struct Batch {
  std::vector<SequenceSlice> sequences;
  std::vector<int32_t> token_ids;  // [tokens]
  // RoPE positions, axis-major [position_axes, tokens]: 1 axis for plain RoPE, 2 for 2D (x, y), 3 for M-RoPE (t, h, w).
  // They are not the cache indices: M-RoPE positions of image tokens repeat and jump.
  std::vector<int32_t> positions;
  int position_axes = 1;

  int64_t tokens() const { return static_cast<int64_t>(token_ids.size()); }

  // Checks that the slices tile [0, tokens) in order, positions match, spans are well formed and every sequence has
  // blocks for kv_start + token_count tokens. Throws loom::Error(kInternal) naming the sequence and the field.
  void validate(int block_size) const;
};

}  // namespace loom::backend
