#include "text/pre_tokenizers.h"

#include <algorithm>
#include <array>

#include "core/error.h"
#include "text/json_fields.h"
#include "text/regex.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace loom::text {

void split_word(const PreToken& word, const std::vector<std::pair<std::size_t, std::size_t>>& matches,
                SplitBehavior behavior, bool invert, std::vector<PreToken>& out) {
  // The word as alternating (range, is_delimiter) pieces covering all of it.
  struct Piece {
    std::size_t begin, end;
    bool delimiter;
  };
  // Reused buffers: this runs once per word and per step, and allocating them each time was a visible cost.
  thread_local std::vector<Piece> pieces, merged;
  pieces.clear();
  merged.clear();
  std::size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > prev) pieces.push_back({prev, begin, invert});
    pieces.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev < word.text.size()) pieces.push_back({prev, word.text.size(), invert});

  bool previous_delimiter = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& p : pieces) {
        if (!p.delimiter) merged.push_back(p);
      }
      break;
    case SplitBehavior::kIsolated:
      merged.swap(pieces);
      break;
    case SplitBehavior::kMergedWithPrevious:
      // A delimiter joins the piece before it, unless that piece is itself a delimiter.
      for (const auto& p : pieces) {
        if (p.delimiter && !previous_delimiter && !merged.empty()) {
          merged.back().end = p.end;
        } else {
          merged.push_back(p);
        }
        previous_delimiter = p.delimiter;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->delimiter && !previous_delimiter && !merged.empty()) {
          merged.back().begin = it->begin;
        } else {
          merged.push_back(*it);
        }
        previous_delimiter = it->delimiter;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    case SplitBehavior::kContiguous:
      for (const auto& p : pieces) {
        if (p.delimiter && previous_delimiter && !merged.empty()) {
          merged.back().end = p.end;
        } else {
          merged.push_back(p);
        }
        previous_delimiter = p.delimiter;
      }
      break;
  }
  for (const auto& p : merged) {
    if (p.end > p.begin) out.push_back({word.text.substr(p.begin, p.end - p.begin), word.at_start && p.begin == 0});
  }
}

namespace {

using Matches = std::vector<std::pair<std::size_t, std::size_t>>;

// Each character satisfying `predicate` is one delimiter.
template <typename Predicate>
Matches char_matches(std::string_view text, Predicate predicate) {
  Matches matches;
  char32_t cp;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8::decode_valid(text, i, cp);
    if (predicate(cp)) matches.emplace_back(i, i + n);
    i += n;
  }
  return matches;
}

SplitBehavior parse_behavior(const nlohmann::json& spec, std::string_view what, SplitBehavior fallback) {
  const std::string name = string_or(spec, "behavior", "", what);
  if (name.empty()) return fallback;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  fail(ErrorKind::kInvalidFile, "{}: unknown split behavior \"{}\"", what, name);
}

class RegexSplit : public PreTokenizer {
 public:
  RegexSplit(const std::string& pattern, SplitBehavior behavior, bool invert, std::string_view what)
      : regex_(pattern, what), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<PreToken>& words) const override {
    std::vector<PreToken> out;
    for (const auto& word : words) split_word(word, regex_.find_all(word.text), behavior_, invert_, out);
    words = std::move(out);
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2's word pattern, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, std::string_view what) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern, what);
  }
  void pre_tokenize(std::vector<PreToken>& words) const override {
    std::vector<PreToken> split;
    for (auto& word : words) {
      if (add_prefix_space_ && (word.text.empty() || word.text[0] != ' ')) word.text.insert(0, 1, ' ');
      if (regex_) {
        split_word(word, regex_->find_all(word.text), SplitBehavior::kIsolated, false, split);
      } else if (!word.text.empty()) {
        split.push_back(std::move(word));
      }
    }
    // Each byte maps to a character of one or two UTF-8 bytes; a flat copy of the table keeps the loop tight.
    static const auto table = [] {
      std::array<std::array<char, 3>, 256> flat{};  // two bytes and the length
      const auto& chars = unicode::byte_to_char();
      for (std::size_t b = 0; b < 256; ++b) {
        flat[b][2] = static_cast<char>(chars[b].size());
        for (std::size_t k = 0; k < chars[b].size() && k < 2; ++k) flat[b][k] = chars[b][k];
      }
      return flat;
    }();
    thread_local std::string mapped;
    for (auto& word : split) {
      mapped.resize(word.text.size() * 2 + 1);  // + 1: a one-byte character still writes two
      char* out = mapped.data();
      for (const char c : word.text) {
        const auto& to = table[static_cast<unsigned char>(c)];
        out[0] = to[0];
        out[1] = to[1];
        out += to[2];
      }
      word.text.assign(mapped.data(), static_cast<std::size_t>(out - mapped.data()));
    }
    words = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class Metaspace : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  Metaspace(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void pre_tokenize(std::vector<PreToken>& words) const override {
    std::vector<PreToken> out;
    for (auto& word : words) {
      std::string text;
      std::size_t pos = 0;
      for (std::size_t hit; (hit = word.text.find(' ', pos)) != std::string::npos; pos = hit + 1) {
        text.append(word.text, pos, hit - pos);
        text += replacement_;
      }
      text.append(word.text, pos);
      const bool starts = text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && word.at_start))) {
        text.insert(0, replacement_);
      }
      PreToken replaced{std::move(text), word.at_start};
      if (!split_) {
        if (!replaced.text.empty()) out.push_back(std::move(replaced));
        continue;
      }
      Matches matches;
      for (std::size_t hit = 0; (hit = replaced.text.find(replacement_, hit)) != std::string::npos;
           hit += replacement_.size()) {
        matches.emplace_back(hit, hit + replacement_.size());
      }
      split_word(replaced, matches, SplitBehavior::kMergedWithNext, false, out);
    }
    words = std::move(out);
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

template <typename Predicate>
class CharSplit : public PreTokenizer {
 public:
  CharSplit(Predicate predicate, SplitBehavior behavior) : predicate_(predicate), behavior_(behavior) {}
  void pre_tokenize(std::vector<PreToken>& words) const override {
    std::vector<PreToken> out;
    for (const auto& word : words) split_word(word, char_matches(word.text, predicate_), behavior_, false, out);
    words = std::move(out);
  }

 private:
  Predicate predicate_;
  SplitBehavior behavior_;
};

template <typename Predicate>
std::unique_ptr<PreTokenizer> char_split(Predicate predicate, SplitBehavior behavior) {
  return std::make_unique<CharSplit<Predicate>>(predicate, behavior);
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<PreToken>& words) const override {
    for (const auto& step : steps_) step->pre_tokenize(words);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, std::string_view what) {
  if (spec.is_null()) return nullptr;
  const std::string type = string_field(spec, "type", what);
  const std::string where = fmt::format("{} ({} pre_tokenizer)", what, type);
  if (type == "Split") {
    return std::make_unique<RegexSplit>(pattern_regex(field(spec, "pattern", where), where),
                                        parse_behavior(spec, where, SplitBehavior::kIsolated),
                                        bool_or(spec, "invert", false, where), where);
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(bool_or(spec, "add_prefix_space", true, where),
                                       bool_or(spec, "use_regex", true, where), where);
  }
  if (type == "Metaspace") {
    Metaspace::Prepend prepend = Metaspace::Prepend::kAlways;
    if (spec.contains("prepend_scheme")) {
      const std::string scheme = string_field(spec, "prepend_scheme", where);
      if (scheme == "always") {
        prepend = Metaspace::Prepend::kAlways;
      } else if (scheme == "first") {
        prepend = Metaspace::Prepend::kFirst;
      } else if (scheme == "never") {
        prepend = Metaspace::Prepend::kNever;
      } else {
        fail(ErrorKind::kInvalidFile, "{}: unknown prepend_scheme \"{}\"", where, scheme);
      }
    } else if (!bool_or(spec, "add_prefix_space", true, where)) {
      prepend = Metaspace::Prepend::kNever;
    }
    const std::string replacement = string_or(spec, "replacement", "\xE2\x96\x81", where);
    if (replacement.empty()) fail(ErrorKind::kInvalidFile, "{}: replacement must not be empty", where);
    return std::make_unique<Metaspace>(replacement, prepend, bool_or(spec, "split", true, where));
  }
  if (type == "Whitespace") {
    // \w+|[^\w\s]+ with Rust's Unicode \w (letters, marks, numbers, connector punctuation, joiners).
    return std::make_unique<RegexSplit>(
        R"([\p{L}\p{M}\p{N}\p{Pc}\x{200C}\x{200D}]+|[^\p{L}\p{M}\p{N}\p{Pc}\x{200C}\x{200D}\s]+)",
        SplitBehavior::kRemoved, true, where);
  }
  if (type == "WhitespaceSplit") return char_split(unicode::is_whitespace, SplitBehavior::kRemoved);
  if (type == "Digits") {
    const bool individual = bool_or(spec, "individual_digits", false, where);
    return char_split(unicode::is_numeric, individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
  }
  if (type == "Punctuation") {
    return char_split(unicode::is_punctuation, parse_behavior(spec, where, SplitBehavior::kIsolated));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& step : array_field(spec, "pretokenizers", where)) {
      if (auto made = make_pre_tokenizer(step, what)) steps.push_back(std::move(made));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  fail(ErrorKind::kUnsupported, "{}: pre_tokenizer type \"{}\" is not supported", what, type);
}

}  // namespace loom::text
