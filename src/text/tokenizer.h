#pragma once
// A Hugging Face tokenizer loaded from tokenizer.json (+ tokenizer_config.json when present): text -> ids and back.
// The pipeline is the one of the `tokenizers` library: added tokens are matched first, the remaining text is
// normalised, pre-tokenized into words and each word encoded by the model; the post-processor adds special tokens.
// Input that is not valid UTF-8 is read as if each invalid sequence were U+FFFD (Python's errors="replace").
// A Tokenizer is immutable after loading and may be used from several threads at once.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "text/added_tokens.h"
#include "text/post_processors.h"

namespace loom::text {

class Normalizer;
class PreTokenizer;
class Model;
class Decoder;

// The named special tokens of tokenizer_config.json, when it names them and they exist.
struct SpecialTokens {
  std::optional<std::int32_t> bos, eos, pad, unk, image, boi, eoi;
};

class Tokenizer {
 public:
  // Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json.
  static Tokenizer load(const std::string& dir);
  // From file contents; `config_json` may be empty. `what` names the source in errors.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                             std::string_view what = "tokenizer.json");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Unknown ids are skipped, as Hugging Face does.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(std::int32_t id) const;
  bool is_special(std::int32_t id) const;  // an added token marked special
  std::size_t vocab_size() const;          // one past the largest id
  const SpecialTokens& special_tokens() const { return special_; }
  const SpecialTemplate& special_template() const { return template_; }

 private:
  Tokenizer();
  static Tokenizer build(std::string_view tokenizer_json, std::string_view config_json, std::string_view what);

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  SpecialTemplate template_;
  SpecialTokens special_;
};

}  // namespace loom::text
