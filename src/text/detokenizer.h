#pragma once
// Streaming detokenizer: turns generated ids into text deltas as they arrive. Each step decodes a short window of
// recent ids twice (without and with the new ids) and emits the difference, so decoders that look at neighbouring
// tokens (byte fallback, leading-space stripping) give the same text as decoding everything at once. Text that ends
// in U+FFFD is held back while it may be an incomplete UTF-8 character still being spelled byte by byte.

#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace loom::text {

class Detokenizer {
 public:
  // `tokenizer` must outlive the detokenizer.
  explicit Detokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

  // Adds one id; returns the text it completes (possibly empty).
  std::string push(std::int32_t id);
  // Returns whatever is still held back (e.g. an unfinished byte sequence, as U+FFFD); call at the end.
  std::string flush();

 private:
  // Longer than the longest UTF-8 character in single-byte tokens: past this, a trailing U+FFFD is real.
  static constexpr std::size_t kMaxPendingIds = 4;

  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<std::int32_t> ids_;
  std::size_t prefix_ = 0;  // start of the decoding window
  std::size_t read_ = 0;    // ids before this have been emitted
};

}  // namespace loom::text
