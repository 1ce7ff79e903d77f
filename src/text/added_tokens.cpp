#include "text/added_tokens.h"

#include "text/normalizers.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace loom::text {
namespace {

// Rust's regex \w and \s, which Hugging Face uses for single_word and lstrip / rstrip.
bool is_word_char(char32_t cp) {
  return cp == '_' || unicode::is_alphanumeric(cp) || unicode::is_mark(cp);
}

char32_t last_char(std::string_view text) {
  std::size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  char32_t cp;
  utf8::decode_valid(text, start, cp);
  return cp;
}

}  // namespace

void AddedVocabulary::Trie::clear() {
  nodes_.assign(1, Node{});
  std::fill(std::begin(first_), std::end(first_), false);
}

void AddedVocabulary::Trie::insert(std::string_view key, std::int32_t id) {
  if (key.empty()) return;
  first_[static_cast<unsigned char>(key[0])] = true;
  std::size_t node = 0;
  for (const char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    std::int32_t child = -1;
    for (const auto& [b, index] : nodes_[node].children) {
      if (b == byte) child = index;
    }
    if (child < 0) {
      child = static_cast<std::int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(byte, child);
      nodes_.emplace_back();
    }
    node = static_cast<std::size_t>(child);
  }
  nodes_[node].id = id;
}

std::pair<std::size_t, std::int32_t> AddedVocabulary::Trie::longest_at(std::string_view text, std::size_t pos) const {
  std::pair<std::size_t, std::int32_t> best{0, -1};
  std::size_t node = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::int32_t child = -1;
    for (const auto& [b, index] : nodes_[node].children) {
      if (b == byte) {
        child = index;
        break;
      }
    }
    if (child < 0) break;
    node = static_cast<std::size_t>(child);
    if (nodes_[node].id >= 0) best = {i + 1 - pos, nodes_[node].id};
  }
  return best;
}

void AddedVocabulary::add(AddedToken token) {
  if (const auto it = by_id_.find(token.id); it != by_id_.end()) {
    by_content_.erase(tokens_[it->second].content);
    tokens_[it->second] = token;
    by_content_[token.content] = it->second;
    return;
  }
  by_id_[token.id] = tokens_.size();
  by_content_[token.content] = tokens_.size();
  tokens_.push_back(std::move(token));
}

void AddedVocabulary::build(const Normalizer* normalizer) {
  raw_trie_.clear();
  normalized_trie_.clear();
  for (const auto& token : tokens_) {
    if (token.normalized && normalizer != nullptr) {
      normalized_trie_.insert(normalizer->normalize(token.content), token.id);
    } else if (token.normalized) {
      normalized_trie_.insert(token.content, token.id);
    } else {
      raw_trie_.insert(token.content, token.id);
    }
  }
}

const AddedToken* AddedVocabulary::by_id(std::int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::by_content(std::string_view content) const {
  const auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

std::vector<AddedVocabulary::Match> AddedVocabulary::find_matches(std::string_view text, const Trie& trie) const {
  std::vector<Match> out;
  if (trie.empty()) return out;
  std::size_t covered = 0;  // end of the last accepted match, including stripped spaces
  for (std::size_t pos = 0; pos < text.size();) {
    if (!trie.may_start(static_cast<unsigned char>(text[pos]))) {
      ++pos;
      continue;
    }
    const auto [length, id] = trie.longest_at(text, pos);
    if (length == 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = *by_id(id);
    std::size_t begin = pos, end = pos + length;
    pos = end;
    if (token.single_word) {
      const bool word_before = begin > 0 && is_word_char(last_char(text.substr(0, begin)));
      char32_t next = 0;
      if (end < text.size()) utf8::decode_valid(text, end, next);
      const bool word_after = end < text.size() && is_word_char(next);
      if (word_before || word_after) continue;
    }
    if (begin < covered) continue;  // inside spaces an rstrip token already took
    if (token.lstrip) {
      while (begin > covered && unicode::is_whitespace(last_char(text.substr(0, begin)))) {
        --begin;
        while (begin > covered && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
      }
    }
    if (token.rstrip) {
      char32_t cp;
      while (end < text.size()) {
        const std::size_t n = utf8::decode_valid(text, end, cp);
        if (!unicode::is_whitespace(cp)) break;
        end += n;
      }
    }
    out.push_back({begin, end, id});
    covered = end;
    pos = std::max(pos, end);
  }
  return out;
}

void AddedVocabulary::split_normalized(std::string text, bool at_start, std::vector<Segment>& out) const {
  std::size_t prev = 0;
  for (const auto& match : find_matches(text, normalized_trie_)) {
    if (match.begin > prev) out.push_back({text.substr(prev, match.begin - prev), -1, at_start && prev == 0});
    out.push_back({text.substr(match.begin, match.end - match.begin), match.id, at_start && match.begin == 0});
    prev = match.end;
  }
  if (prev == 0) {
    out.push_back({std::move(text), -1, at_start});
  } else if (prev < text.size()) {
    out.push_back({text.substr(prev), -1, false});
  }
}

std::vector<Segment> AddedVocabulary::split(std::string_view text, const Normalizer* normalizer) const {
  std::vector<Segment> out;
  const auto add_text = [&](std::string_view piece, bool at_start) {
    std::string normalized = normalizer ? normalizer->normalize(piece) : std::string(piece);
    if (normalized.empty()) return;
    split_normalized(std::move(normalized), at_start, out);
  };
  std::size_t prev = 0;
  for (const auto& match : find_matches(text, raw_trie_)) {
    if (match.begin > prev) add_text(text.substr(prev, match.begin - prev), prev == 0);
    out.push_back({std::string(text.substr(match.begin, match.end - match.begin)), match.id, match.begin == 0});
    prev = match.end;
  }
  if (prev < text.size()) add_text(text.substr(prev), prev == 0);
  return out;
}

}  // namespace loom::text
