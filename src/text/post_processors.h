#pragma once
// The "post_processor" section of tokenizer.json, for single sequences: TemplateProcessing, ByteLevel (ids are
// unchanged), RobertaProcessing / BertProcessing (cls ... sep) and Sequence. It adds the special tokens that
// encode(text, add_special_tokens=true) puts around the text.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

namespace loom::text {

// The ids placed before and after the text's own ids.
struct SpecialTemplate {
  std::vector<std::int32_t> prefix;
  std::vector<std::int32_t> suffix;
};

// Builds the template for a single sequence from `spec` (JSON null: nothing added). Errors name `what`.
SpecialTemplate make_special_template(const nlohmann::json& spec, std::string_view what);

}  // namespace loom::text
