// Byte-pair encoding. A word starts as one symbol per character (or per byte token when the character is not in the
// vocabulary and byte_fallback is on); the adjacent pair with the lowest merge rank is merged, leftmost first, until
// no pair has a merge. A min-heap of candidate pairs over a linked list of symbols makes this O(n log n) per word, so
// hostile inputs (one 1 MB word) stay fast; results for short words are cached.

#include <cstring>
#include <queue>

#include "core/error.h"
#include "text/json_fields.h"
#include "text/model.h"
#include "text/tokenizer_file.h"
#include "text/utf8.h"
#include "text/word_cache.h"

namespace loom::text {
namespace {

// (left id, right id) -> (rank, merged id), open addressing with linear probing.
class MergeTable {
 public:
  struct Entry {
    std::uint64_t key = kEmpty;
    std::int32_t rank = 0;
    std::int32_t merged = 0;
  };
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};

  void reserve(std::size_t n) {
    std::size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    slots_.assign(capacity, Entry{});
    mask_ = capacity - 1;
  }
  // Keeps the first (lowest-rank) entry of a duplicated pair, as Hugging Face does.
  void insert(std::int32_t left, std::int32_t right, std::int32_t rank, std::int32_t merged) {
    const std::uint64_t key = pack(left, right);
    for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return;
      if (slots_[i].key == kEmpty) {
        slots_[i] = {key, rank, merged};
        return;
      }
    }
  }
  const Entry* find(std::int32_t left, std::int32_t right) const {
    const std::uint64_t key = pack(left, right);
    for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static std::uint64_t pack(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }
  // Both ids must reach the low bits that select the slot: a plain multiply leaves them depending on the right id
  // and a few bits of the left one, so pairs sharing a right id clustered into long probe runs.
  std::size_t slot(std::uint64_t key) const {
    key ^= key >> 33;
    key *= 0xFF51AFD7ED558CCDull;
    key ^= key >> 33;
    key *= 0xC4CEB9FE1A85EC53ull;
    key ^= key >> 33;
    return static_cast<std::size_t>(key) & mask_;
  }

  std::vector<Entry> slots_;
  std::size_t mask_ = 0;
};

class Bpe : public Model {
 public:
  Bpe(TokenizerFile& file, std::string_view what);
  void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const override;
  const Vocab& vocab() const override { return vocab_; }

 private:
  struct Symbol {
    std::int32_t id;
    std::int32_t prev;
    std::int32_t next;
  };
  void initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const;
  std::optional<std::int32_t> char_id(std::string_view word, std::size_t begin, std::size_t end, char32_t cp) const;
  void merge(std::vector<Symbol>& symbols) const;

  Vocab vocab_;
  MergeTable merges_;
  std::vector<std::int32_t> char_ids_;  // code point -> id of the single-character token, -1 when absent
  std::optional<std::int32_t> unk_id_;
  std::int32_t byte_ids_[256];
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix

  mutable WordCache cache_;
};

Bpe::Bpe(TokenizerFile& file, std::string_view what) {
  const auto& model = file.root["model"];
  const std::string where = fmt::format("{} (BPE model)", what);
  if (!file.has_vocab_object) fail(ErrorKind::kInvalidFile, "{}: model.vocab must be an object of token: id", where);
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0) {
    fail(ErrorKind::kUnsupported, "{}: BPE dropout is not supported", where);
  }
  vocab_.reserve(file.vocab.size());
  for (auto& [token, id] : file.vocab) vocab_.add(std::move(token), static_cast<std::int32_t>(id), where);
  file.vocab.clear();
  file.vocab.shrink_to_fit();

  byte_fallback_ = bool_or(model, "byte_fallback", false, where);
  fuse_unk_ = bool_or(model, "fuse_unk", false, where);
  ignore_merges_ = bool_or(model, "ignore_merges", false, where);
  prefix_ = string_or(model, "continuing_subword_prefix", "", where);
  suffix_ = string_or(model, "end_of_word_suffix", "", where);
  const std::string unk = string_or(model, "unk_token", "", where);
  if (!unk.empty()) {
    unk_id_ = vocab_.find(unk);
    if (!unk_id_) fail(ErrorKind::kInvalidFile, "{}: unk_token \"{}\" is not in the vocabulary", where, unk);
  }

  for (int b = 0; b < 256; ++b) {
    const auto id = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = id ? *id : -1;
  }

  char_ids_.assign(0x30000, -1);
  for (std::size_t id = 0; id < vocab_.size(); ++id) {
    const std::string* token = vocab_.token(static_cast<std::int32_t>(id));
    if (token == nullptr || token->empty() || token->size() > 4) continue;
    char32_t cp;
    if (utf8::decode_valid(*token, 0, cp) == token->size() && utf8::is_valid(*token) && cp < char_ids_.size()) {
      char_ids_[cp] = static_cast<std::int32_t>(id);
    }
  }

  merges_.reserve(file.merges.size());
  std::string joined;
  for (std::size_t rank = 0; rank < file.merges.size(); ++rank) {
    const auto& [left, right] = file.merges[rank];
    const auto left_id = vocab_.find(left), right_id = vocab_.find(right);
    if (!left_id || !right_id) {
      fail(ErrorKind::kInvalidFile, "{}: merge {} (\"{}\" \"{}\") uses a token that is not in the vocabulary", where,
           rank, left, right);
    }
    // With a continuing-subword prefix, the right half carries it but the merged token does not repeat it.
    std::string_view tail = right;
    if (!prefix_.empty() && tail.substr(0, prefix_.size()) == prefix_) tail.remove_prefix(prefix_.size());
    joined.assign(left).append(tail);
    const auto merged = vocab_.find(joined);
    if (!merged) {
      fail(ErrorKind::kInvalidFile, "{}: merge {} makes \"{}\", which is not in the vocabulary", where, rank, joined);
    }
    merges_.insert(*left_id, *right_id, static_cast<std::int32_t>(rank), *merged);
  }
  file.merges.clear();
  file.merges.shrink_to_fit();
}

std::optional<std::int32_t> Bpe::char_id(std::string_view word, std::size_t begin, std::size_t end, char32_t cp) const {
  const bool first = begin == 0, last = end == word.size();
  if ((first || prefix_.empty()) && (!last || suffix_.empty())) {
    if (cp < char_ids_.size()) {
      const std::int32_t id = char_ids_[cp];
      return id < 0 ? std::nullopt : std::optional<std::int32_t>(id);
    }
    return vocab_.find(word.substr(begin, end - begin));
  }
  std::string piece = first ? std::string() : prefix_;
  piece.append(word.substr(begin, end - begin));
  if (last) piece += suffix_;
  return vocab_.find(piece);
}

void Bpe::initial_symbols(std::string_view word, std::vector<Symbol>& symbols) const {
  const auto push = [&](std::int32_t id) {
    const auto index = static_cast<std::int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  };
  std::size_t unk_pending = 0;  // 1 when the last symbol is an unknown that a fused run may extend
  char32_t cp;
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t n = utf8::decode_valid(word, i, cp);
    const auto id = char_id(word, i, i + n, cp);
    bool known = id.has_value();
    if (known) {
      push(*id);
    } else if (byte_fallback_) {
      known = true;
      for (std::size_t k = 0; k < n; ++k) known = known && byte_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
      if (known) {
        for (std::size_t k = 0; k < n; ++k) push(byte_ids_[static_cast<unsigned char>(word[i + k])]);
      }
    }
    if (known) {
      unk_pending = 0;
    } else if (unk_id_) {
      if (!(fuse_unk_ && unk_pending)) push(*unk_id_);
      unk_pending = 1;
    }
    i += n;
  }
  if (!symbols.empty()) symbols.back().next = -1;
}

void Bpe::merge(std::vector<Symbol>& symbols) const {
  struct Candidate {
    std::int32_t rank;
    std::int32_t pos;
    std::int32_t merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Candidate> storage;
  storage.reserve(symbols.size());
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue(std::greater<>{}, std::move(storage));
  const auto consider = [&](std::int32_t pos) {
    const std::int32_t next = symbols[pos].next;
    if (next < 0) return;
    if (const auto* entry = merges_.find(symbols[pos].id, symbols[next].id)) {
      queue.push({entry->rank, pos, entry->merged});
    }
  };
  for (std::int32_t pos = 0; pos + 1 < static_cast<std::int32_t>(symbols.size()); ++pos) consider(pos);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.id < 0 || left.next < 0) continue;  // merged away, or nothing to its right any more
    Symbol& right = symbols[left.next];
    // Stale candidate: one of the two symbols has changed since it was queued.
    const auto* entry = merges_.find(left.id, right.id);
    if (entry == nullptr || entry->merged != top.merged) continue;
    left.id = top.merged;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
}

void Bpe::tokenize(std::string_view word, std::vector<std::int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto id = vocab_.find(word)) {
      ids.push_back(*id);
      return;
    }
  }
  if (cache_.lookup(word, ids)) return;
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  initial_symbols(word, symbols);
  if (symbols.size() > 1) merge(symbols);
  const std::size_t first = ids.size();
  for (std::int32_t pos = symbols.empty() ? -1 : 0; pos >= 0; pos = symbols[pos].next) ids.push_back(symbols[pos].id);
  cache_.insert(word, ids.data() + first, ids.size() - first);
}

}  // namespace

std::unique_ptr<Model> make_bpe_model(TokenizerFile& file, std::string_view what) {
  return std::make_unique<Bpe>(file, what);
}

}  // namespace loom::text
