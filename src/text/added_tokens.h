#pragma once
// Added tokens (tokenizer.json "added_tokens"): strings matched in the input before the model runs, special or not,
// with the lstrip / rstrip / single_word / normalized options. Tokens with normalized=false are matched in the raw
// input; the rest of the input is then normalised and tokens with normalized=true are matched in it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace loom::text {

class Normalizer;

struct AddedToken {
  std::string content;
  std::int32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A run of input: either one added token (id >= 0) or normalised text still to be pre-tokenized (id < 0).
struct Segment {
  std::string text;
  std::int32_t id = -1;
  bool at_start = false;  // begins at offset 0 of the input
};

class AddedVocabulary {
 public:
  // Adds a token; a later token with the same id replaces the earlier one.
  void add(AddedToken token);
  // Prepares the matchers; call after the last add() and whenever the normalizer changes.
  void build(const Normalizer* normalizer);

  // Splits valid UTF-8 `text` into segments as described above.
  std::vector<Segment> split(std::string_view text, const Normalizer* normalizer) const;

  const AddedToken* by_id(std::int32_t id) const;
  const AddedToken* by_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

 private:
  struct Match {
    std::size_t begin, end;
    std::int32_t id;
  };
  // A byte trie of token strings with leftmost-longest scanning.
  class Trie {
   public:
    void clear();
    void insert(std::string_view key, std::int32_t id);
    // The longest key starting at `pos`: its length and id, or length 0.
    std::pair<std::size_t, std::int32_t> longest_at(std::string_view text, std::size_t pos) const;
    bool may_start(unsigned char byte) const { return first_[byte]; }
    bool empty() const { return nodes_.size() <= 1; }

   private:
    struct Node {
      std::vector<std::pair<unsigned char, std::int32_t>> children;
      std::int32_t id = -1;
    };
    std::vector<Node> nodes_{1};
    bool first_[256] = {};
  };

  std::vector<Match> find_matches(std::string_view text, const Trie& trie) const;
  void split_normalized(std::string text, bool at_start, std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::int32_t, std::size_t> by_id_;
  std::unordered_map<std::string, std::size_t> by_content_;
  Trie raw_trie_;         // normalized == false: matched in the input
  Trie normalized_trie_;  // normalized == true: matched in normalised text
};

}  // namespace loom::text
