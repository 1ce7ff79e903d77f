#include "text/tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "text/decoders.h"
#include "text/json_fields.h"
#include "text/model.h"
#include "text/normalizers.h"
#include "text/pre_tokenizers.h"
#include "text/tokenizer_file.h"
#include "text/utf8.h"

namespace loom::text {
namespace {

constexpr std::size_t kMaxTokenizerBytes = std::size_t{512} << 20;
constexpr std::size_t kMaxConfigBytes = std::size_t{64} << 20;

// A special token of tokenizer_config.json: a string or an AddedToken object {"content": ...}.
std::optional<std::string> config_token(const nlohmann::json& config, const char* name) {
  const auto it = config.find(name);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

AddedToken parse_added_token(const nlohmann::json& entry, std::int32_t id, std::string_view what) {
  AddedToken token;
  token.id = id;
  token.content = string_field(entry, "content", what);
  token.special = bool_or(entry, "special", false, what);
  token.lstrip = bool_or(entry, "lstrip", false, what);
  token.rstrip = bool_or(entry, "rstrip", false, what);
  token.single_word = bool_or(entry, "single_word", false, what);
  token.normalized = bool_or(entry, "normalized", !token.special, what);
  return token;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
  const std::string text = read_text_file(path, kMaxTokenizerBytes);
  const std::string config_path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  std::string config;
  if (std::filesystem::exists(config_path)) config = read_text_file(config_path, kMaxConfigBytes);
  return from_json(text, config, path);
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json, std::string_view what) {
  try {
    return build(tokenizer_json, config_json, what);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type deep inside a component.
    fail(ErrorKind::kInvalidFile, "{}: {}", what, e.what());
  }
}

Tokenizer Tokenizer::build(std::string_view tokenizer_json, std::string_view config_json, std::string_view what) {
  Tokenizer t;
  TokenizerFile file = parse_tokenizer_file(tokenizer_json, what);
  const auto& root = file.root;
  const auto section = [&](const char* name) -> const nlohmann::json& {
    static const nlohmann::json null_json;
    const auto it = root.find(name);
    return it == root.end() ? null_json : *it;
  };
  t.normalizer_ = make_normalizer(section("normalizer"), what);
  t.pre_tokenizer_ = make_pre_tokenizer(section("pre_tokenizer"), what);
  t.decoder_ = make_decoder(section("decoder"), what);
  t.template_ = make_special_template(section("post_processor"), what);
  t.model_ = make_model(file, what);

  const auto& added = section("added_tokens");
  if (!added.is_null() && !added.is_array()) fail(ErrorKind::kInvalidFile, "{}: added_tokens must be an array", what);
  for (const auto& entry : added.is_array() ? added : nlohmann::json::array()) {
    const long long id = int_or(entry, "id", -1, what);
    if (id < 0 || id > INT32_MAX) fail(ErrorKind::kInvalidFile, "{}: each added token needs an id >= 0", what);
    t.added_.add(parse_added_token(entry, static_cast<std::int32_t>(id), what));
  }

  nlohmann::json config = nlohmann::json::object();
  if (!config_json.empty()) {
    config = nlohmann::json::parse(config_json, nullptr, false);
    if (!config.is_object()) fail(ErrorKind::kInvalidFile, "{}: tokenizer_config.json is not a JSON object", what);
    // Tokens the config declares that tokenizer.json lacks.
    if (const auto it = config.find("added_tokens_decoder"); it != config.end() && it->is_object()) {
      for (const auto& [key, entry] : it->items()) {
        char* end = nullptr;
        const long id = std::strtol(key.c_str(), &end, 10);
        if (end == key.c_str() || *end != '\0' || id < 0 || id > INT32_MAX || !entry.is_object()) continue;
        if (t.added_.by_id(static_cast<std::int32_t>(id)) == nullptr) {
          t.added_.add(parse_added_token(entry, static_cast<std::int32_t>(id), what));
        }
      }
    }
  }
  t.added_.build(t.normalizer_.get());

  const auto resolve = [&](const char* name) -> std::optional<std::int32_t> {
    auto token = config_token(config, name);
    if (!token && config.contains("extra_special_tokens") && config["extra_special_tokens"].is_object()) {
      token = config_token(config["extra_special_tokens"], name);
    }
    return token ? t.token_to_id(*token) : std::nullopt;
  };
  t.special_ = {resolve("bos_token"),   resolve("eos_token"), resolve("pad_token"), resolve("unk_token"),
                resolve("image_token"), resolve("boi_token"), resolve("eoi_token")};

  // Llama- and Gemma-class tokenizers in transformers rebuild the template from add_bos_token / add_eos_token.
  const std::string tokenizer_class = config.value("tokenizer_class", std::string());
  const bool rebuilds = tokenizer_class.starts_with("Llama") || tokenizer_class.starts_with("Gemma") ||
                        tokenizer_class.starts_with("CodeLlama");
  if (rebuilds && (config.contains("add_bos_token") || config.contains("add_eos_token"))) {
    const auto flag = [&](const char* name, bool fallback) {
      return config.contains(name) && config[name].is_boolean() ? config[name].get<bool>() : fallback;
    };
    SpecialTemplate rebuilt;
    if (flag("add_bos_token", true) && t.special_.bos) rebuilt.prefix.push_back(*t.special_.bos);
    if (flag("add_eos_token", false) && t.special_.eos) rebuilt.suffix.push_back(*t.special_.eos);
    t.template_ = rebuilt;
  }
  return t;
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::to_valid(text);
    text = repaired;
  }
  std::vector<std::int32_t> ids;
  if (add_special_tokens) ids = template_.prefix;
  std::vector<PreToken> words;
  for (auto& segment : added_.split(text, normalizer_.get())) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    words.clear();
    words.push_back({std::move(segment.text), segment.at_start});
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(words);
    for (const auto& word : words) model_->tokenize(word.text, ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), template_.suffix.begin(), template_.suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const std::int32_t id : ids) {
    if (const AddedToken* added = added_.by_id(id)) {
      if (!(skip_special_tokens && added->special)) tokens.push_back(added->content);
    } else if (const std::string* token = model_->vocab().token(id)) {
      tokens.push_back(*token);
    }
  }
  if (decoder_) {
    decoder_->decode_chain(tokens);
    std::string out;
    for (const auto& token : tokens) out += token;
    return out;
  }
  std::string out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (i) out += ' ';
    out += tokens[i];
  }
  return out;
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const AddedToken* added = added_.by_content(token)) return added->id;
  return model_->vocab().find(token);
}

std::optional<std::string> Tokenizer::id_to_token(std::int32_t id) const {
  if (const AddedToken* added = added_.by_id(id)) return added->content;
  if (const std::string* token = model_->vocab().token(id)) return *token;
  return std::nullopt;
}

bool Tokenizer::is_special(std::int32_t id) const {
  const AddedToken* added = added_.by_id(id);
  return added != nullptr && added->special;
}

std::size_t Tokenizer::vocab_size() const {
  std::size_t size = model_->vocab().size();
  for (const auto& token : added_.tokens()) size = std::max(size, static_cast<std::size_t>(token.id) + 1);
  return size;
}

}  // namespace loom::text
