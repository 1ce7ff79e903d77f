#include "text/post_processors.h"

#include "core/error.h"
#include "text/json_fields.h"

namespace loom::text {
namespace {

void append_template(const nlohmann::json& spec, std::string_view what, SpecialTemplate& out) {
  const std::string type = string_field(spec, "type", what);
  const std::string where = fmt::format("{} ({} post_processor)", what, type);
  if (type == "ByteLevel") return;
  if (type == "TemplateProcessing") {
    const auto& specials = field(spec, "special_tokens", where);
    bool after_sequence = false;
    for (const auto& item : array_field(spec, "single", where)) {
      if (item.contains("Sequence")) {
        after_sequence = true;
        continue;
      }
      if (!item.contains("SpecialToken")) {
        fail(ErrorKind::kInvalidFile, "{}: template items must be Sequence or SpecialToken", where);
      }
      const std::string name = string_field(item["SpecialToken"], "id", where);
      if (!specials.contains(name)) {
        fail(ErrorKind::kInvalidFile, "{}: special token \"{}\" is not in special_tokens", where, name);
      }
      auto& target = after_sequence ? out.suffix : out.prefix;
      for (const auto& id : array_field(specials[name], "ids", where)) {
        if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > INT32_MAX) {
          fail(ErrorKind::kInvalidFile, "{}: ids of \"{}\" must be non-negative integers", where, name);
        }
        target.push_back(id.get<std::int32_t>());
      }
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    const auto id_of = [&](const char* key) {
      const auto& pair = array_field(spec, key, where);
      if (pair.size() != 2 || !pair[1].is_number_integer()) {
        fail(ErrorKind::kInvalidFile, "{}: \"{}\" must be [token, id]", where, key);
      }
      return pair[1].get<std::int32_t>();
    };
    out.prefix.push_back(id_of("cls"));
    out.suffix.insert(out.suffix.begin(), id_of("sep"));
    return;
  }
  if (type == "Sequence") {
    for (const auto& step : array_field(spec, "processors", where)) append_template(step, what, out);
    return;
  }
  fail(ErrorKind::kUnsupported, "{}: post_processor type \"{}\" is not supported", what, type);
}

}  // namespace

SpecialTemplate make_special_template(const nlohmann::json& spec, std::string_view what) {
  SpecialTemplate out;
  if (!spec.is_null()) append_template(spec, what, out);
  return out;
}

}  // namespace loom::text
