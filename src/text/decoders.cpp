#include "text/decoders.h"

#include "core/error.h"
#include "text/json_fields.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace loom::text {
namespace {

// Maps byte-level characters back to bytes; a token with any other character keeps its own UTF-8 bytes (added
// tokens such as "<|im_end|>" are not byte-level encoded). Invalid UTF-8 in the result becomes U+FFFD.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      const std::size_t mark = bytes.size();
      char32_t cp;
      bool all_mapped = true;
      for (std::size_t i = 0; i < token.size();) {
        i += utf8::decode_valid(token, i, cp);
        const int b = unicode::char_to_byte(cp);
        if (b < 0) {
          all_mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!all_mapped) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    tokens.assign(1, utf8::to_valid(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const nlohmann::json& spec, std::string_view what) : content_(string_field(spec, "content", what)) {
    const auto& pattern = field(spec, "pattern", what);
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string()) {
      fail(ErrorKind::kUnsupported, "{}: only {{\"String\": ...}} patterns are supported in decoders", what);
    }
    pattern_ = pattern["String"].get<std::string>();
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (pattern_.empty()) return;
    for (auto& token : tokens) {
      std::string out;
      std::size_t pos = 0;
      for (std::size_t hit; (hit = token.find(pattern_, pos)) != std::string::npos; pos = hit + pattern_.size()) {
        out.append(token, pos, hit - pos);
        out += content_;
      }
      out.append(token, pos);
      token = std::move(out);
    }
  }

 private:
  std::string pattern_, content_;
};

// Runs of "<0xAB>" tokens become the UTF-8 text their bytes spell; when they do not spell valid UTF-8, each byte
// becomes one U+FFFD (what Hugging Face does).
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    std::size_t pending_count = 0;
    const auto flush = [&] {
      if (pending_count == 0) return;
      if (utf8::is_valid(pending)) {
        out.push_back(pending);
      } else {
        for (std::size_t k = 0; k < pending_count; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& token : tokens) {
      const int byte = parse_byte(token);
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int parse_byte(std::string_view token) {
    if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return -1;
    const int hi = hex(token[3]), lo = hex(token[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& token : tokens) all += token;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of `content` (one character) from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, std::size_t start, std::size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (auto& token : tokens) {
      std::size_t begin = 0, end = token.size();
      for (std::size_t k = 0; k < start_ && token.compare(begin, content_.size(), content_) == 0; ++k) {
        begin += content_.size();
      }
      for (std::size_t k = 0; k < stop_ && end >= begin + content_.size() &&
                              token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++k) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  std::size_t start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& token = tokens[i];
      std::size_t pos = 0;
      for (std::size_t hit; (hit = token.find(replacement_, pos)) != std::string::npos;
           pos = hit + replacement_.size()) {
        out.append(token, pos, hit - pos);
        out += ' ';
      }
      out.append(token, pos);
      if (i == 0 && strip_first_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class WordPieceDecoder : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string& token = tokens[i];
      if (i != 0) {
        if (token.compare(0, prefix_.size(), prefix_) == 0) {
          token.erase(0, prefix_.size());
        } else {
          token.insert(0, 1, ' ');
        }
      }
      if (cleanup_) {
        for (const auto& [from, to] : kCleanups) {
          for (std::size_t hit; (hit = token.find(from)) != std::string::npos;) token.replace(hit, from.size(), to);
        }
      }
    }
  }

 private:
  // The English detokenisation rules of Hugging Face's cleanup (clean_up_tokenization).
  static constexpr std::pair<std::string_view, std::string_view> kCleanups[] = {
      {" .", "."},   {" ?", "?"},           {" !", "!"},   {" ,", ","},     {" ' ", "'"},   {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string prefix_;
  bool cleanup_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, std::string_view what) {
  if (spec.is_null()) return nullptr;
  const std::string type = string_field(spec, "type", what);
  const std::string where = fmt::format("{} ({} decoder)", what, type);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(spec, where);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const long long start = int_or(spec, "start", 0, where), stop = int_or(spec, "stop", 0, where);
    if (start < 0 || stop < 0) fail(ErrorKind::kInvalidFile, "{}: start and stop must not be negative", where);
    return std::make_unique<StripDecoder>(string_field(spec, "content", where), static_cast<std::size_t>(start),
                                          static_cast<std::size_t>(stop));
  }
  if (type == "Metaspace") {
    bool strip_first = bool_or(spec, "add_prefix_space", true, where);
    if (spec.contains("prepend_scheme")) strip_first = string_field(spec, "prepend_scheme", where) != "never";
    return std::make_unique<MetaspaceDecoder>(string_or(spec, "replacement", "\xE2\x96\x81", where), strip_first);
  }
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(string_or(spec, "prefix", "##", where),
                                              bool_or(spec, "cleanup", true, where));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& step : array_field(spec, "decoders", where)) {
      if (auto made = make_decoder(step, what)) steps.push_back(std::move(made));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  fail(ErrorKind::kUnsupported, "{}: decoder type \"{}\" is not supported", what, type);
}

}  // namespace loom::text
