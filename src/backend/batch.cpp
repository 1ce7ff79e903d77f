#include "backend/batch.h"

#include "core/error.h"

namespace loom::backend {

void Batch::validate(int block_size) const {
  if (block_size <= 0) fail(ErrorKind::kInternal, "[batch] block size must be positive, got {}", block_size);
  if (position_axes < 1 || position_axes > 3) {
    fail(ErrorKind::kInternal, "[batch] position_axes must be 1, 2 or 3, got {}", position_axes);
  }
  if (static_cast<int64_t>(positions.size()) != tokens() * position_axes) {
    fail(ErrorKind::kInternal, "[batch] positions has {} entries, expected {} axes × {} tokens", positions.size(),
         position_axes, tokens());
  }
  int64_t next_row = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const SequenceSlice& seq = sequences[s];
    if (seq.token_offset != next_row || seq.token_count <= 0) {
      fail(ErrorKind::kInternal, "[batch] sequence {} covers rows [{}, +{}), expected to start at row {}", s,
           seq.token_offset, seq.token_count, next_row);
    }
    if (seq.kv_start < 0) fail(ErrorKind::kInternal, "[batch] sequence {} has negative kv_start", s);
    next_row += seq.token_count;
    const int64_t kv_len = seq.kv_start + seq.token_count;
    const int64_t needed = (kv_len + block_size - 1) / block_size;
    if (static_cast<int64_t>(seq.block_table.size()) < needed) {
      fail(ErrorKind::kInternal, "[batch] sequence {} holds {} tokens but its block table has {} blocks (need {})", s,
           kv_len, seq.block_table.size(), needed);
    }
    for (const TokenRange& span : seq.bidirectional_spans) {
      if (span.start < 0 || span.end <= span.start || span.end > kv_len) {
        fail(ErrorKind::kInternal, "[batch] sequence {} has bidirectional span [{}, {}) outside its {} tokens", s,
             span.start, span.end, kv_len);
      }
    }
  }
  if (next_row != tokens()) {
    fail(ErrorKind::kInternal, "[batch] sequences cover {} rows but the batch has {} tokens", next_row, tokens());
  }
}

}  // namespace loom::backend
