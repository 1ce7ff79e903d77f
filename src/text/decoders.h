#pragma once
// The "decoder" section of tokenizer.json: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, WordPiece and
// Sequence. A decoder turns the token strings of a sequence back into text; each step maps the list of strings to a
// new list and the result is their concatenation.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace loom::text {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for JSON null; loom::Error (kUnsupported / kInvalidFile) naming `what` otherwise.
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, std::string_view what);

}  // namespace loom::text
