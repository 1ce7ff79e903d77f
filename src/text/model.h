#pragma once
// The "model" section of tokenizer.json: turns one pre-tokenized word into ids. BPE (byte-level and SentencePiece
// style with byte fallback), WordPiece and Unigram are implemented.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::text {

struct TokenizerFile;

// token <-> id of a model's own vocabulary.
class Vocab {
 public:
  static constexpr std::int32_t kMaxId = (1 << 22) - 1;  // real vocabularies stay well below a million

  // Throws loom::Error(kInvalidFile) naming `what` on a duplicate id.
  void add(std::string token, std::int32_t id, std::string_view what);
  void reserve(std::size_t n);
  std::optional<std::int32_t> find(std::string_view token) const;
  const std::string* token(std::int32_t id) const {
    return id >= 0 && static_cast<std::size_t>(id) < tokens_.size() && present_[id] ? &tokens_[id] : nullptr;
  }
  std::size_t size() const { return tokens_.size(); }  // one past the largest id

 private:
  // token -> id as open addressing over the token table: one probe array of (hash, id), strings stored once.
  struct Slot {
    std::uint32_t hash = 0;
    std::int32_t id = -1;
  };
  void grow();

  std::vector<Slot> slots_;
  std::size_t used_ = 0;
  std::vector<std::string> tokens_;
  std::vector<bool> present_;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of `word` (valid UTF-8, already normalised and pre-tokenized) to `ids`.
  virtual void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const = 0;
  virtual const Vocab& vocab() const = 0;
};

// Builds the model of a parsed tokenizer.json (consumes its vocab and merges). Errors name `what`.
std::unique_ptr<Model> make_model(TokenizerFile& file, std::string_view what);

std::unique_ptr<Model> make_bpe_model(TokenizerFile& file, std::string_view what);
std::unique_ptr<Model> make_wordpiece_model(TokenizerFile& file, std::string_view what);
std::unique_ptr<Model> make_unigram_model(TokenizerFile& file, std::string_view what);

}  // namespace loom::text
