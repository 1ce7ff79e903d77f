#pragma once
// Builds the statement tree from tokens, following Jinja2's grammar and operator precedence.

#include <string_view>

#include "text/jinja/ast.h"
#include "text/jinja/lexer.h"

namespace loom::text::jinja {

struct ParseLimits {
  int max_depth = 200;  // nesting of expressions and blocks, so a hostile template cannot exhaust the stack
};

// Throws loom::Error(kInvalidRequest) with the line and column of the first syntax error.
Body parse_template(std::string_view source, const ParseLimits& limits = {});

}  // namespace loom::text::jinja
