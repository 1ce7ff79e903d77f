// WordPiece (BERT): greedy longest-match-first over each word, with "##" marking pieces that continue a word; a word
// with any unmatched part, or longer than max_input_chars_per_word, becomes the unknown token.

#include "core/error.h"
#include "text/json_fields.h"
#include "text/model.h"
#include "text/tokenizer_file.h"

namespace loom::text {
namespace {

class WordPiece : public Model {
 public:
  WordPiece(TokenizerFile& file, std::string_view what) {
    const auto& model = file.root["model"];
    const std::string where = fmt::format("{} (WordPiece model)", what);
    if (!file.has_vocab_object) fail(ErrorKind::kInvalidFile, "{}: model.vocab must be an object", where);
    vocab_.reserve(file.vocab.size());
    for (auto& [token, id] : file.vocab) vocab_.add(std::move(token), static_cast<std::int32_t>(id), where);
    file.vocab.clear();
    prefix_ = string_or(model, "continuing_subword_prefix", "##", where);
    max_chars_ = static_cast<std::size_t>(int_or(model, "max_input_chars_per_word", 100, where));
    const std::string unk = string_or(model, "unk_token", "[UNK]", where);
    const auto unk_id = vocab_.find(unk);
    if (!unk_id) fail(ErrorKind::kInvalidFile, "{}: unk_token \"{}\" is not in the vocabulary", where, unk);
    unk_id_ = *unk_id;
  }

  void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const override {
    std::vector<std::size_t> boundaries;  // byte offsets of character starts, plus the end
    for (std::size_t i = 0; i < word.size(); ++i) {
      if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) boundaries.push_back(i);
    }
    if (boundaries.size() > max_chars_) {
      ids.push_back(unk_id_);
      return;
    }
    boundaries.push_back(word.size());
    std::vector<std::int32_t> pieces;
    std::string candidate;
    for (std::size_t start = 0; start + 1 < boundaries.size();) {
      std::size_t end = boundaries.size() - 1;
      std::optional<std::int32_t> found;
      for (; end > start; --end) {
        candidate.assign(start == 0 ? "" : prefix_);
        candidate.append(word.substr(boundaries[start], boundaries[end] - boundaries[start]));
        if ((found = vocab_.find(candidate))) break;
      }
      if (!found) {
        ids.push_back(unk_id_);
        return;
      }
      pieces.push_back(*found);
      start = end;
    }
    ids.insert(ids.end(), pieces.begin(), pieces.end());
  }
  const Vocab& vocab() const override { return vocab_; }

 private:
  Vocab vocab_;
  std::string prefix_;
  std::size_t max_chars_ = 100;
  std::int32_t unk_id_ = 0;
};

}  // namespace

std::unique_ptr<Model> make_wordpiece_model(TokenizerFile& file, std::string_view what) {
  return std::make_unique<WordPiece>(file, what);
}

}  // namespace loom::text
