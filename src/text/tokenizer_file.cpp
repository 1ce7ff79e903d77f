#include "text/tokenizer_file.h"

#include <fstream>

#include "core/error.h"

namespace loom::text {
namespace {

using json = nlohmann::json;

// A SAX handler that builds the JSON tree except for the two large arrays of the model.
class Handler : public nlohmann::json_sax<json> {
 public:
  Handler(TokenizerFile& out, std::string_view what) : out_(out), what_(what) {}

  bool null() override { return value(json(nullptr)); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return number(v, json(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    return number(v > static_cast<number_unsigned_t>(INT64_MAX) ? -1 : static_cast<std::int64_t>(v), json(v));
  }
  bool number_float(number_float_t v, const string_t&) override {
    if (mode_ != Mode::kDom) bad("model.vocab ids must be integers");
    return value(json(v));
  }
  bool string(string_t& v) override {
    switch (mode_) {
      case Mode::kDom:
        return value(json(std::move(v)));
      case Mode::kVocab:
        bad("model.vocab values must be integer ids");
      case Mode::kMerges: {
        const std::size_t space = v.find(' ');
        if (space == std::string::npos || v.find(' ', space + 1) != std::string::npos) {
          bad(fmt::format("merge \"{}\" must be two tokens separated by one space", v));
        }
        out_.merges.emplace_back(v.substr(0, space), v.substr(space + 1));
        return true;
      }
      case Mode::kMergePair:
        pair_.push_back(std::move(v));
        return true;
    }
    return true;
  }
  bool binary(binary_t&) override { return value(json(nullptr)); }

  bool start_object(std::size_t) override {
    if (mode_ != Mode::kDom) bad("unexpected object inside model.vocab or model.merges");
    if (is_model_field("vocab")) {
      out_.has_vocab_object = true;
      mode_ = Mode::kVocab;
      (*stack_.back())["vocab"] = json::object();
      return true;
    }
    return open(json::object());
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kDom;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kMergePair;
      pair_.clear();
      return true;
    }
    if (mode_ != Mode::kDom) bad("unexpected array inside model.vocab or a merge");
    if (is_model_field("merges")) {
      out_.has_merges = true;
      mode_ = Mode::kMerges;
      (*stack_.back())["merges"] = json::array();
      return true;
    }
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::kMergePair) {
      if (pair_.size() != 2) bad("each merge must be a pair of two strings");
      out_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = Mode::kMerges;
      return true;
    }
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kDom;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    fail(ErrorKind::kInvalidFile, "{}: not valid JSON at byte {}: {}", what_, position, e.what());
  }

 private:
  enum class Mode { kDom, kVocab, kMerges, kMergePair };

  [[noreturn]] void bad(const std::string& message) { fail(ErrorKind::kInvalidFile, "{}: {}", what_, message); }

  // True when the next container is root["model"][field].
  bool is_model_field(const char* field) const {
    return stack_.size() == 2 && stack_.back()->is_object() && key_ == field && in_model_;
  }

  bool number(std::int64_t id, json&& v) {
    if (mode_ == Mode::kVocab) {
      if (id < 0 || id > INT32_MAX) bad(fmt::format("model.vocab id of \"{}\" is out of range", key_));
      out_.vocab.emplace_back(std::move(key_), id);
      return true;
    }
    if (mode_ != Mode::kDom) bad("merges must be strings");
    return value(std::move(v));
  }

  json* insert(json&& v) {
    if (stack_.empty()) {
      out_.root = std::move(v);
      return &out_.root;
    }
    json& parent = *stack_.back();
    if (parent.is_object()) {
      json& slot = parent[key_];
      slot = std::move(v);
      return &slot;
    }
    parent.push_back(std::move(v));
    return &parent.back();
  }
  bool value(json&& v) {
    if (mode_ != Mode::kDom) bad("unexpected value inside model.vocab or model.merges");
    insert(std::move(v));
    return true;
  }
  bool open(json&& container) {
    const bool entering_model = stack_.size() == 1 && stack_.back()->is_object() && key_ == "model";
    stack_.push_back(insert(std::move(container)));
    if (stack_.size() == 2) in_model_ = entering_model;
    return true;
  }

  TokenizerFile& out_;
  std::string_view what_;
  std::vector<json*> stack_;
  std::string key_;
  std::vector<std::string> pair_;
  Mode mode_ = Mode::kDom;
  bool in_model_ = false;
};

}  // namespace

TokenizerFile parse_tokenizer_file(std::string_view text, std::string_view what) {
  TokenizerFile out;
  Handler handler(out, what);
  json::sax_parse(text.begin(), text.end(), &handler);
  if (!out.root.is_object()) fail(ErrorKind::kInvalidFile, "{}: expected a JSON object at the top level", what);
  return out;
}

std::string read_text_file(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kNotFound, "cannot open {}", path);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) fail(ErrorKind::kInvalidFile, "cannot read {}", path);
  if (static_cast<std::size_t>(size) > max_bytes) {
    fail(ErrorKind::kInvalidFile, "{} is {} bytes; the limit is {}", path, size, max_bytes);
  }
  std::string data(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  in.read(data.data(), size);
  if (!in) fail(ErrorKind::kInvalidFile, "cannot read {}", path);
  return data;
}

}  // namespace loom::text
