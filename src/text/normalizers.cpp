#include "text/normalizers.h"

#include <utf8proc.h>

#include <vector>

#include "core/error.h"
#include "text/json_fields.h"
#include "text/regex.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace loom::text {

std::string pattern_regex(const nlohmann::json& pattern, std::string_view what) {
  if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    return regex_escape(pattern["String"].get<std::string>());
  }
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
    return pattern["Regex"].get<std::string>();
  }
  fail(ErrorKind::kInvalidFile, "{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", what);
}

namespace {

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(unicode::Form form) : form_(form) {}
  std::string normalize(std::string_view text) const override { return unicode::normalize(text, form_); }

 private:
  unicode::Form form_;
};

class Lowercase : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override { return unicode::lowercase(text); }
};

class Replace : public Normalizer {
 public:
  Replace(const nlohmann::json& spec, std::string_view what)
      : content_(string_field(spec, "content", what)), regex_(pattern_regex(field(spec, "pattern", what), what), what) {
    const auto& pattern = spec["pattern"];
    if (pattern.contains("String")) literal_ = pattern["String"].get<std::string>();
  }
  std::string normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    if (!literal_.empty()) {  // the common case (Gemma: " " -> "▁") without the regex engine
      std::size_t pos = 0;
      for (std::size_t hit; (hit = text.find(literal_, pos)) != std::string_view::npos; pos = hit + literal_.size()) {
        out.append(text.substr(pos, hit - pos));
        out += content_;
      }
      out.append(text.substr(pos));
      return out;
    }
    std::size_t pos = 0;
    for (const auto& [begin, end] : regex_.find_all(text)) {
      out.append(text.substr(pos, begin - pos));
      out += content_;
      pos = end;
    }
    out.append(text.substr(pos));
    return out;
  }

 private:
  std::string content_;
  std::string literal_;
  Regex regex_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string_view text) const override {
    if (text.empty()) return {};  // Hugging Face leaves an empty string empty
    return prefix_ + std::string(text);
  }

 private:
  std::string prefix_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text) const override {
    std::size_t begin = 0, end = text.size();
    char32_t cp;
    if (left_) {
      while (begin < end) {
        const std::size_t n = utf8::decode_valid(text, begin, cp);
        if (!unicode::is_whitespace(cp)) break;
        begin += n;
      }
    }
    if (right_) {
      while (end > begin) {
        std::size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        utf8::decode_valid(text, start, cp);
        if (!unicode::is_whitespace(cp)) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override {
    std::string out;
    char32_t cp;
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t n = utf8::decode_valid(text, i, cp);
      if (utf8proc_category(static_cast<utf8proc_int32_t>(cp)) != UTF8PROC_CATEGORY_MN) out.append(text.substr(i, n));
      i += n;
    }
    return out;
  }
};

class ByteLevelNormalizer : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override {
    std::string out;
    for (const char c : text) out += unicode::byte_to_char()[static_cast<unsigned char>(c)];
    return out;
  }
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) current = step->normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, std::string_view what) {
  if (spec.is_null()) return nullptr;
  const std::string type = string_field(spec, "type", what);
  const std::string where = fmt::format("{} ({} normalizer)", what, type);
  if (type == "NFC") return std::make_unique<UnicodeForm>(unicode::Form::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeForm>(unicode::Form::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(unicode::Form::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(unicode::Form::kNfkd);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Replace") return std::make_unique<Replace>(spec, where);
  if (type == "Prepend") return std::make_unique<Prepend>(string_field(spec, "prepend", where));
  if (type == "Strip") {
    return std::make_unique<Strip>(bool_or(spec, "strip_left", true, where), bool_or(spec, "strip_right", true, where));
  }
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& step : array_field(spec, "normalizers", where)) {
      if (auto made = make_normalizer(step, what)) steps.push_back(std::move(made));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  fail(ErrorKind::kUnsupported, "{}: normalizer type \"{}\" is not supported", what, type);
}

}  // namespace loom::text
