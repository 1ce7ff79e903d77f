#pragma once
// A Hugging Face chat template: parsed once, rendered per request with the conversation as its variables
// (messages, tools, add_generation_prompt, bos_token, eos_token and any extra keyword arguments). Behaves like
// transformers' renderer: Jinja2's ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loop controls,
// its tojson filter and its raise_exception / strftime_now globals. See docs/TEMPLATES.md for what is supported.

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "text/jinja/interpreter.h"

namespace loom::text::jinja {

class Template {
 public:
  // Throws loom::Error(kInvalidRequest) naming the line and column of a syntax error.
  static Template parse(std::string_view source);

  // `context` must be a JSON object; its keys become template variables. Throws loom::Error(kInvalidRequest) with
  // the line and column when the template fails (raise_exception, undefined values, type errors, limits).
  std::string render(const nlohmann::ordered_json& context, const RenderLimits& limits = {}) const;
  std::string render(const nlohmann::json& context, const RenderLimits& limits = {}) const;
  std::string render(const Value& context, const RenderLimits& limits = {}) const;

 private:
  std::shared_ptr<const Body> body_;
};

}  // namespace loom::text::jinja
