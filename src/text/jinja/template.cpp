#include "text/jinja/template.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/jinja/parser.h"

namespace loom::text::jinja {

Template Template::parse(std::string_view source) {
  Template t;
  t.body_ = std::make_shared<const Body>(parse_template(source));
  return t;
}

std::string Template::render(const Value& context, const RenderLimits& limits) const {
  if (!context.is_dict()) fail(ErrorKind::kInvalidRequest, "chat template context must be an object");
  try {
    Interpreter interpreter(limits);
    return interpreter.render(*body_, context);
  } catch (const RenderFailure& failure) {
    fail(ErrorKind::kInvalidRequest, "chat template error: {} (line {}, column {})", failure.message, failure.line,
         failure.column);
  }
}

std::string Template::render(const nlohmann::ordered_json& context, const RenderLimits& limits) const {
  return render(Value::from_json(context), limits);
}

std::string Template::render(const nlohmann::json& context, const RenderLimits& limits) const {
  return render(Value::from_json(context), limits);
}

}  // namespace loom::text::jinja
