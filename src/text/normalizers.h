#pragma once
// The "normalizer" section of tokenizer.json: NFC, NFD, NFKC, NFKD, Lowercase, Replace (string or regex), Prepend,
// Strip, StripAccents, ByteLevel and Sequence.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace loom::text {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Normalises valid UTF-8 text; the result is valid UTF-8.
  virtual std::string normalize(std::string_view text) const = 0;
};

// Builds the normalizer described by `spec` (nullptr for JSON null). Unknown or malformed specs throw loom::Error
// (kUnsupported / kInvalidFile) naming `what`.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, std::string_view what);

}  // namespace loom::text
