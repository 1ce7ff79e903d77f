#pragma once
// A compiled Unicode regular expression (PCRE2 with UTF and UCP, JIT-compiled when available) used by the Split and
// Replace steps of tokenizer.json. Patterns are written for Oniguruma (what Hugging Face tokenizers uses); `\s` and
// `\S` are rewritten to Oniguruma's Unicode White_Space set so both engines agree on which characters are spaces.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loom::text {

class Regex {
 public:
  // Throws loom::Error(kInvalidFile) naming `what` when the pattern does not compile.
  Regex(std::string_view pattern, std::string_view what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping, non-empty matches of `text` (valid UTF-8) as [begin, end) byte ranges, left to right.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Escapes `literal` so that it matches itself as a pattern.
std::string regex_escape(std::string_view literal);

// The rewrite of `\s` / `\S` described above (exposed for tests).
std::string oniguruma_to_pcre2(std::string_view pattern);

}  // namespace loom::text
