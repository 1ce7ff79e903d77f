// Unigram (SentencePiece's unigram language model), with the semantics of Hugging Face `tokenizers`:
// - each word is segmented by Viterbi over the pieces that match at every character start (a byte trie), maximising
//   the sum of the pieces' scores (log-probabilities);
// - a character with no single-character piece may also be covered by the unknown token, scored min(score) - 10;
// - where two paths to the same position score exactly the same, the one whose last piece starts earliest wins (the
//   first candidate is kept and only a strictly better one replaces it);
// - runs of adjacent unknowns are fused into one (tokenizers always fuses for Unigram and reads no "fuse_unk" field);
// - with byte_fallback, a fused unknown run is spelled as <0xNN> pieces when every one of its bytes has one, else
//   it becomes the unknown token.
// Without unk_id, a character that only the unknown token could cover is an error (as in tokenizers).

#include <cmath>
#include <limits>

#include "core/error.h"
#include "text/json_fields.h"
#include "text/model.h"
#include "text/tokenizer_file.h"
#include "text/utf8.h"
#include "text/word_cache.h"

namespace loom::text {
namespace {

// A byte trie over the pieces. Edges live in one open-addressing table keyed by (node, byte); each node records the
// id of the piece that ends there (-1 when none).
class ByteTrie {
 public:
  ByteTrie() : ends_(1, -1) {}

  void insert(std::string_view piece, std::int32_t id) {
    std::int32_t node = 0;
    for (const char c : piece) {
      const auto byte = static_cast<unsigned char>(c);
      std::int32_t child = find_child(node, byte);
      if (child < 0) {
        child = static_cast<std::int32_t>(ends_.size());
        ends_.push_back(-1);
        add_edge(node, byte, child);
      }
      node = child;
    }
    ends_[static_cast<std::size_t>(node)] = id;
  }

  std::int32_t root() const { return 0; }
  std::int32_t end_id(std::int32_t node) const { return ends_[static_cast<std::size_t>(node)]; }

  std::int32_t find_child(std::int32_t node, unsigned char byte) const {
    if (slots_.empty()) return -1;
    const std::uint64_t key = pack(node, byte);
    for (std::size_t i = slot(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return slots_[i].child;
      if (slots_[i].key == kEmpty) return -1;
    }
  }

 private:
  struct Edge {
    std::uint64_t key = kEmpty;
    std::int32_t child = -1;
  };
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};

  static std::uint64_t pack(std::int32_t node, unsigned char byte) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(node)) << 8) | byte;
  }
  std::size_t slot(std::uint64_t key) const {
    key ^= key >> 33;  // a full mix, so that the node and the byte both reach the low bits
    key *= 0xFF51AFD7ED558CCDull;
    key ^= key >> 33;
    return static_cast<std::size_t>(key) & mask_;
  }
  void add_edge(std::int32_t node, unsigned char byte, std::int32_t child) {
    if (2 * (used_ + 1) > slots_.size()) rehash(std::max<std::size_t>(64, slots_.size() * 2));
    place({pack(node, byte), child});
    ++used_;
  }
  void place(const Edge& edge) {
    std::size_t i = slot(edge.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = edge;
  }
  void rehash(std::size_t capacity) {
    std::vector<Edge> old = std::move(slots_);
    slots_.assign(capacity, Edge{});
    mask_ = capacity - 1;
    for (const Edge& edge : old) {
      if (edge.key != kEmpty) place(edge);
    }
  }

  std::vector<std::int32_t> ends_;
  std::vector<Edge> slots_;
  std::size_t mask_ = 0;
  std::size_t used_ = 0;
};

class Unigram : public Model {
 public:
  Unigram(TokenizerFile& file, std::string_view what);
  void tokenize(std::string_view word, std::vector<std::int32_t>& ids) const override;
  const Vocab& vocab() const override { return vocab_; }

 private:
  void emit_unknown(std::string_view text, std::vector<std::int32_t>& ids) const;

  Vocab vocab_;
  ByteTrie trie_;
  std::vector<double> scores_;  // by id
  std::optional<std::int32_t> unk_id_;
  double unk_score_ = 0;
  bool byte_fallback_ = false;
  std::int32_t byte_ids_[256];
  std::string where_;
  mutable WordCache cache_;
};

Unigram::Unigram(TokenizerFile& file, std::string_view what) : where_(fmt::format("{} (Unigram model)", what)) {
  const auto& model = file.root["model"];
  const auto& pieces = array_field(model, "vocab", where_);
  if (pieces.size() > static_cast<std::size_t>(Vocab::kMaxId)) {
    fail(ErrorKind::kInvalidFile, "{}: {} pieces; at most {} are supported", where_, pieces.size(), Vocab::kMaxId);
  }
  const auto n = static_cast<std::int32_t>(pieces.size());
  scores_.resize(pieces.size());
  std::vector<const std::string*> texts(pieces.size());
  double min_score = std::numeric_limits<double>::infinity();
  for (std::int32_t id = 0; id < n; ++id) {
    const auto& entry = pieces[static_cast<std::size_t>(id)];
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number()) {
      fail(ErrorKind::kInvalidFile, "{}: vocab entry {} must be [piece, score]", where_, id);
    }
    texts[static_cast<std::size_t>(id)] = entry[0].get_ptr<const std::string*>();
    const double score = entry[1].get<double>();
    if (!std::isfinite(score)) fail(ErrorKind::kInvalidFile, "{}: vocab entry {} has a non-finite score", where_, id);
    scores_[static_cast<std::size_t>(id)] = score;
    min_score = std::min(min_score, score);
  }
  // tokenizers maps a piece to the last id that spells it (a later duplicate overwrites the earlier one); Vocab keeps
  // the first string it is given, so add from the back.
  vocab_.reserve(pieces.size());
  for (std::int32_t id = n - 1; id >= 0; --id) {
    const std::string& text = *texts[static_cast<std::size_t>(id)];
    if (!utf8::is_valid(text)) fail(ErrorKind::kInvalidFile, "{}: vocab entry {} is not valid UTF-8", where_, id);
    vocab_.add(text, id, where_);
  }
  for (std::int32_t id = 0; id < n; ++id) {
    const std::string& text = *vocab_.token(id);
    if (!text.empty() && vocab_.find(text) == id) trie_.insert(text, id);
  }

  const long long unk = int_or(model, "unk_id", -1, where_);
  if (model.contains("unk_id") && !model["unk_id"].is_null()) {
    if (unk < 0 || unk >= n) fail(ErrorKind::kInvalidFile, "{}: unk_id {} is not a vocab index", where_, unk);
    unk_id_ = static_cast<std::int32_t>(unk);
  }
  unk_score_ = min_score - 10.0;
  byte_fallback_ = bool_or(model, "byte_fallback", false, where_);
  for (int b = 0; b < 256; ++b) {
    const auto id = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = id ? *id : -1;
  }
}

void Unigram::emit_unknown(std::string_view text, std::vector<std::int32_t>& ids) const {
  // A fused run of unknowns could in principle spell a piece; tokenizers looks it up first.
  if (const auto id = vocab_.find(text)) {
    ids.push_back(*id);
    return;
  }
  if (byte_fallback_) {
    bool all = true;
    for (const char c : text) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
    if (all) {
      for (const char c : text) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      return;
    }
  }
  if (!unk_id_)
    fail(ErrorKind::kInvalidRequest, "{}: text needs the unknown token but the model has no unk_id", where_);
  ids.push_back(*unk_id_);
}

void Unigram::tokenize(std::string_view word, std::vector<std::int32_t>& ids) const {
  if (word.empty() || cache_.lookup(word, ids)) return;
  const std::size_t first = ids.size();
  struct Best {
    double score;
    std::int32_t start;  // -1: not reached yet
    std::int32_t id;
  };
  thread_local std::vector<Best> best;
  best.assign(word.size() + 1, Best{0.0, -1, 0});
  best[0].start = 0;
  for (std::size_t start = 0; start < word.size();) {
    const double base = best[start].score;
    const std::size_t char_len = utf8::sequence_length(static_cast<unsigned char>(word[start]));
    bool single = false;
    std::int32_t node = trie_.root();
    for (std::size_t end = start; end < word.size();) {
      node = trie_.find_child(node, static_cast<unsigned char>(word[end]));
      if (node < 0) break;
      ++end;
      const std::int32_t id = trie_.end_id(node);
      if (id < 0) continue;
      single = single || end - start == char_len;
      const double score = scores_[static_cast<std::size_t>(id)] + base;
      Best& target = best[end];
      if (target.start < 0 || score > target.score) target = {score, static_cast<std::int32_t>(start), id};
    }
    if (!single) {
      const double score = unk_score_ + base;
      Best& target = best[start + char_len];
      if (target.start < 0 || score > target.score) {
        if (!unk_id_) {
          fail(ErrorKind::kInvalidRequest, "{}: text needs the unknown token but the model has no unk_id", where_);
        }
        target = {score, static_cast<std::int32_t>(start), *unk_id_};
      }
    }
    start += char_len;
  }
  // Walk back from the end, then emit in order. Adjacent unknowns fuse into one span; as in tokenizers, a match of
  // the unknown piece's own text counts as an unknown here too.
  thread_local std::vector<std::pair<std::int32_t, bool>> path;  // (start, unknown) per piece, last first
  path.clear();
  for (auto end = static_cast<std::int32_t>(word.size()); end > 0;) {
    const Best& node = best[static_cast<std::size_t>(end)];
    path.emplace_back(node.start, unk_id_ == node.id);
    end = node.start;
  }
  for (std::size_t i = path.size(); i-- > 0;) {
    const auto [start, unknown] = path[i];
    const std::size_t next = i > 0 ? static_cast<std::size_t>(path[i - 1].first) : word.size();
    if (!unknown) {
      ids.push_back(best[next].id);
      continue;
    }
    std::size_t last = i;  // extend over following unknowns
    while (last > 0 && path[last - 1].second) --last;
    const std::size_t end = last > 0 ? static_cast<std::size_t>(path[last - 1].first) : word.size();
    emit_unknown(word.substr(static_cast<std::size_t>(start), end - static_cast<std::size_t>(start)), ids);
    i = last;
  }
  cache_.insert(word, ids.data() + first, ids.size() - first);
}

}  // namespace

std::unique_ptr<Model> make_unigram_model(TokenizerFile& file, std::string_view what) {
  return std::make_unique<Unigram>(file, what);
}

}  // namespace loom::text
