#pragma once
// The "pre_tokenizer" section of tokenizer.json: ByteLevel, Split (string or regex), Metaspace, Digits, Whitespace,
// WhitespaceSplit, Punctuation and Sequence. A pre-tokenizer cuts normalised text into words the model encodes
// independently.

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loom::text {

struct PreToken {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original input (Metaspace's prepend_scheme "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each word of `words` by its pieces; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<PreToken>& words) const = 0;
};

// How a split treats the delimiters it finds (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Cuts `word` at the [begin, end) delimiter ranges `matches` (sorted, non-overlapping) and appends the pieces.
void split_word(const PreToken& word, const std::vector<std::pair<std::size_t, std::size_t>>& matches,
                SplitBehavior behavior, bool invert, std::vector<PreToken>& out);

// nullptr for JSON null; loom::Error (kUnsupported / kInvalidFile) naming `what` otherwise.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, std::string_view what);

}  // namespace loom::text
