#include "text/model.h"

#include "core/error.h"
#include "text/json_fields.h"
#include "text/tokenizer_file.h"

namespace loom::text {

void Vocab::add(std::string token, std::int32_t id, std::string_view what) {
  if (id < 0) fail(ErrorKind::kInvalidFile, "{}: negative id {} for \"{}\"", what, id, token);
  const auto index = static_cast<std::size_t>(id);
  if (index >= tokens_.size()) {
    tokens_.resize(index + 1);
    present_.resize(index + 1, false);
  }
  if (present_[index]) fail(ErrorKind::kInvalidFile, "{}: id {} is used by two tokens", what, id);
  present_[index] = true;
  tokens_[index] = token;
  ids_.emplace(std::move(token), id);
}

std::unique_ptr<Model> make_model(TokenizerFile& file, std::string_view what) {
  const auto& model = field(file.root, "model", what);
  // Files written by older versions of tokenizers omit "type" for BPE.
  const std::string type = string_or(model, "type", file.has_merges ? "BPE" : "", what);
  if (type == "BPE") return make_bpe_model(file, what);
  if (type == "WordPiece") return make_wordpiece_model(file, what);
  fail(ErrorKind::kUnsupported, "{}: model type \"{}\" is not supported (BPE and WordPiece are)", what, type);
}

}  // namespace loom::text
