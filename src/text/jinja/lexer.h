#pragma once
// Splits a template into text and tag tokens the way Jinja2's lexer does under transformers' settings: newlines
// normalised, one trailing newline dropped, trim_blocks and lstrip_blocks, `-`/`+` whitespace control, comments
// removed and raw blocks passed through as text.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::text::jinja {

enum class TokenType {
  kText,
  kVariableBegin,
  kVariableEnd,
  kBlockBegin,
  kBlockEnd,
  kName,
  kString,
  kInt,
  kFloat,
  kOperator,
  kEnd
};

struct Token {
  TokenType type;
  std::string value;  // text, name, unescaped string literal or operator
  int line = 0;
  int column = 0;
  int64_t int_value = 0;
  double float_value = 0;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws loom::Error(kInvalidRequest) naming the line and column of a malformed tag or literal.
std::vector<Token> tokenize(std::string_view source, const LexOptions& options = {});

}  // namespace loom::text::jinja
