#pragma once
// Reads tokenizer.json. The model's vocabulary and merges (hundreds of thousands of entries for Gemma) are streamed
// straight into flat vectors instead of a JSON tree, which keeps loading a 33 MB file well under a second; everything
// else is kept as a JSON tree for the component factories.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loom::text {

struct TokenizerFile {
  nlohmann::json root;  // the whole file, with model.vocab (when an object) and model.merges left empty
  std::vector<std::pair<std::string, std::int64_t>> vocab;  // model.vocab as {token: id}, in file order
  std::vector<std::pair<std::string, std::string>> merges;  // model.merges, either spelling ("a b" or ["a", "b"])
  bool has_vocab_object = false;
  bool has_merges = false;
};

// Parses the text of a tokenizer.json; `what` names the file in errors (loom::Error kInvalidFile).
TokenizerFile parse_tokenizer_file(std::string_view text, std::string_view what);

// Reads a whole file (kNotFound when missing; kInvalidFile when larger than `max_bytes`).
std::string read_text_file(const std::string& path, std::size_t max_bytes);

}  // namespace loom::text
