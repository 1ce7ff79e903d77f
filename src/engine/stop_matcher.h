#pragma once
// Decides where a generation stops: on a stop token id (the model's end-of-generation ids plus the request's), or on a
// stop string found in the decoded text. Stop strings are matched on the concatenated text deltas, across token
// boundaries; the earliest occurrence (smallest start offset) of any of them wins, and neither it nor anything after
// it is output. Text that could still be the beginning of a stop string is held back until the next delta settles
// it, so the caller only ever sees text that the final answer will contain.
//
// Works on bytes: deltas from the streaming detokenizer are whole UTF-8 characters and stop strings are valid UTF-8,
// so the held-back boundary always falls between characters.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::engine {

class StopMatcher {
 public:
  // Empty stop strings are ignored (they would match before any text).
  StopMatcher(std::vector<int32_t> stop_ids, std::vector<std::string> stop_strings);

  bool is_stop_id(int32_t id) const;

  // Adds a text delta; returns the text that can be output now. Once a stop string has matched, stopped() is true and
  // later deltas return nothing.
  std::string push(std::string_view delta);
  // At the end of generation: returns the held-back text (cut before a stop string that can now be decided).
  std::string flush();

  bool stopped() const { return matched_.has_value(); }
  // The stop string that ended the text, once stopped().
  const std::optional<std::string>& matched() const { return matched_; }

 private:
  // The earliest complete match in held_ (npos when none), and the stop string it is.
  size_t earliest_match(size_t& which) const;
  // The start of the longest suffix of held_ that is a proper prefix of a stop string (held_.size() when none).
  size_t pending_start() const;
  std::string take(size_t count);

  std::vector<int32_t> ids_;
  std::vector<std::string> strings_;
  std::string held_;
  std::optional<std::string> matched_;
};

}  // namespace loom::engine
