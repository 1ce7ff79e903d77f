#include "text/jinja/lexer.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "text/jinja/python_text.h"

namespace loom::text::jinja {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

// Python's str.rstrip() and the `\s` class of its regular expressions, on UTF-8 text.
std::string rstrip_whitespace(std::string_view text) {
  return py_strip(text, nullptr, false, true);
}
bool all_whitespace(std::string_view text) {
  if (text.empty()) return false;
  for (char32_t c : decode_utf8(text)) {
    if (!py_isspace(c)) return false;
  }
  return true;
}

class Lexer {
 public:
  Lexer(std::string source, const LexOptions& options) : src_(std::move(source)), options_(options) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      const size_t start = find_tag(pos);
      std::string text = src_.substr(pos, start - pos);
      if (start == src_.size()) {
        emit_text(std::move(text), pos);
        break;
      }
      const char kind = src_[start + 1];
      const char modifier = start + 2 < src_.size() ? src_[start + 2] : '\0';
      if (modifier == '-') {
        text = rstrip_whitespace(text);
      } else if (modifier != '+' && options_.lstrip_blocks && kind != '{') {
        text = lstrip_line(std::move(text), line_starting);
      }
      emit_text(std::move(text), pos);
      size_t cursor = start + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
      if (kind == '#') {
        pos = lex_comment(start, cursor);
      } else if (kind == '%' && is_raw_begin(cursor)) {
        pos = lex_raw(cursor);
      } else {
        pos = lex_tag(start, cursor, kind == '{');
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    tokens_.push_back(Token{TokenType::kEnd, "", position_line(src_.size()), position_column(src_.size())});
    return std::move(tokens_);
  }

 private:
  int position_line(size_t offset) const {
    return static_cast<int>(std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - line_starts_.begin());
  }
  int position_column(size_t offset) const {
    return static_cast<int>(offset - line_starts_[static_cast<size_t>(position_line(offset) - 1)]) + 1;
  }

  [[noreturn]] void error(size_t offset, std::string_view message) const {
    fail(ErrorKind::kInvalidRequest, "chat template syntax error: {} (line {}, column {})", message,
         position_line(offset), position_column(offset));
  }

  size_t find_tag(size_t pos) const {
    while (true) {
      const size_t found = src_.find('{', pos);
      if (found == std::string::npos || found + 1 >= src_.size()) return src_.size();
      const char next = src_[found + 1];
      if (next == '{' || next == '%' || next == '#') return found;
      pos = found + 1;
    }
  }

  std::string lstrip_line(std::string text, bool line_starting) const {
    const size_t newline = text.rfind('\n');
    const size_t l_pos = newline == std::string::npos ? 0 : newline + 1;
    if ((l_pos > 0 || line_starting) && all_whitespace(std::string_view(text).substr(l_pos))) text.resize(l_pos);
    return text;
  }

  void emit_text(std::string text, size_t offset) {
    if (text.empty()) return;
    tokens_.push_back(Token{TokenType::kText, std::move(text), position_line(offset), position_column(offset)});
  }

  void push(TokenType type, std::string value, size_t offset) {
    tokens_.push_back(Token{type, std::move(value), position_line(offset), position_column(offset)});
  }

  size_t skip_whitespace(size_t pos) const {
    while (pos < src_.size()) {
      // Unicode whitespace counts as `\s` too; decode only when a non-ASCII byte appears.
      if (is_space(src_[pos])) {
        ++pos;
        continue;
      }
      if (static_cast<unsigned char>(src_[pos]) >= 0x80) {
        const auto cps = decode_utf8(std::string_view(src_).substr(pos, 4));
        if (!cps.empty() && py_isspace(cps[0])) {
          std::string encoded;
          append_utf8(encoded, cps[0]);
          pos += encoded.size();
          continue;
        }
      }
      break;
    }
    return pos;
  }

  size_t lex_comment(size_t start, size_t cursor) {
    const size_t end = src_.find("#}", cursor);
    if (end == std::string::npos) error(start, "missing end of comment tag");
    size_t pos = end + 2;
    if (end > cursor && src_[end - 1] == '-') {
      pos = skip_whitespace(pos);
    } else if (options_.trim_blocks && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  // `{% raw %}` (optionally with `-`): the word raw alone in the tag.
  bool is_raw_begin(size_t cursor) const {
    size_t p = cursor;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && is_name_char(src_[p + 3]))) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    return src_.compare(p, 2, "%}") == 0 || src_.compare(p, 3, "-%}") == 0;
  }

  size_t lex_raw(size_t cursor) {
    size_t p = src_.find("%}", cursor);
    const bool strip_after = src_[p - 1] == '-';
    p += 2;
    if (strip_after) p = skip_whitespace(p);
    const size_t body_start = p;
    const bool line_starting = p > 0 && src_[p - 1] == '\n';
    size_t search = p;
    while (true) {
      const size_t tag = src_.find("{%", search);
      if (tag == std::string::npos) error(cursor, "missing end of raw directive");
      size_t q = tag + 2;
      const char modifier = q < src_.size() ? src_[q] : '\0';
      if (modifier == '-' || modifier == '+') ++q;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      std::string body = src_.substr(body_start, tag - body_start);
      if (modifier == '-') {
        body = rstrip_whitespace(body);
      } else if (modifier != '+' && options_.lstrip_blocks) {
        body = lstrip_line(std::move(body), line_starting);
      }
      emit_text(std::move(body), body_start);
      if (src_.compare(q, 3, "-%}") == 0) return skip_whitespace(q + 3);
      if (src_.compare(q, 3, "+%}") == 0) return q + 3;
      if (src_.compare(q, 2, "%}") != 0) error(q, "expected end of endraw tag");
      q += 2;
      if (options_.trim_blocks && q < src_.size() && src_[q] == '\n') ++q;
      return q;
    }
  }

  // Lexes expression tokens up to the closing `}}` or `%}` (only outside brackets), returns the offset after it.
  size_t lex_tag(size_t start, size_t pos, bool variable) {
    push(variable ? TokenType::kVariableBegin : TokenType::kBlockBegin, "", start);
    std::vector<char> brackets;
    const char closer = variable ? '}' : '%';
    while (true) {
      if (pos >= src_.size()) error(start, "unexpected end of template inside a tag");
      if (brackets.empty()) {
        auto at = [&](size_t p, char a, char b) { return p + 1 < src_.size() && src_[p] == a && src_[p + 1] == b; };
        if (src_[pos] == '-' && at(pos + 1, closer, '}')) {
          push(variable ? TokenType::kVariableEnd : TokenType::kBlockEnd, "", pos);
          return skip_whitespace(pos + 3);
        }
        if (!variable && src_[pos] == '+' && at(pos + 1, '%', '}')) {
          push(TokenType::kBlockEnd, "", pos);
          return pos + 3;
        }
        if (at(pos, closer, '}')) {
          push(variable ? TokenType::kVariableEnd : TokenType::kBlockEnd, "", pos);
          pos += 2;
          if (!variable && options_.trim_blocks && pos < src_.size() && src_[pos] == '\n') ++pos;
          return pos;
        }
      }
      const size_t next = skip_whitespace(pos);
      if (next != pos) {
        pos = next;
        continue;
      }
      const char c = src_[pos];
      if (is_digit(c)) {
        pos = lex_number(pos);
      } else if (is_name_start(c)) {
        size_t end = pos;
        while (end < src_.size() && is_name_char(src_[end])) ++end;
        push(TokenType::kName, src_.substr(pos, end - pos), pos);
        pos = end;
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        pos = lex_operator(pos, brackets);
      }
    }
  }

  size_t lex_number(size_t pos) {
    if (src_[pos] == '0' && pos + 1 < src_.size()) {
      const char p = static_cast<char>(src_[pos + 1] | 0x20);
      const int base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (base != 0) {
        size_t end = pos + 2;
        std::string digits;
        while (end < src_.size()) {
          const char c = static_cast<char>(src_[end] | 0x20);
          const int d = is_digit(src_[end]) ? src_[end] - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
          if (src_[end] == '_') {
            ++end;
            continue;
          }
          if (d < 0 || d >= base) break;
          digits += src_[end++];
        }
        if (digits.empty()) error(pos, "invalid integer literal");
        Token token{TokenType::kInt, src_.substr(pos, end - pos), position_line(pos), position_column(pos)};
        errno = 0;
        token.int_value = std::strtoll(digits.c_str(), nullptr, base);
        if (errno == ERANGE) error(pos, "integer literal out of range");
        tokens_.push_back(std::move(token));
        return end;
      }
    }
    auto digits = [&](size_t p) {  // (\d+_)*\d+
      size_t q = p;
      while (q < src_.size() &&
             (is_digit(src_[q]) || (src_[q] == '_' && q + 1 < src_.size() && is_digit(src_[q + 1]) && q > p))) {
        ++q;
      }
      return q;
    };
    const size_t int_end = digits(pos);
    size_t end = int_end;
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' && is_digit(src_[end + 1])) {
      end = digits(end + 1);
      is_float = true;
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t q = end + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && is_digit(src_[q])) {
        end = digits(q);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = pos; i < end; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Token token{is_float ? TokenType::kFloat : TokenType::kInt, text, position_line(pos), position_column(pos)};
    if (is_float) {
      token.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      if (text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos) {
        error(pos, "invalid integer literal");
      }
      errno = 0;
      token.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) error(pos, "integer literal out of range");
    }
    tokens_.push_back(std::move(token));
    return end;
  }

  size_t lex_string(size_t pos) {
    const char quote = src_[pos];
    std::string value;
    size_t p = pos + 1;
    auto hex = [&](size_t at, int count) -> uint32_t {
      uint32_t v = 0;
      for (int i = 0; i < count; ++i) {
        const char h = at + static_cast<size_t>(i) < src_.size() ? src_[at + static_cast<size_t>(i)] : '\0';
        const int d = is_digit(h)              ? h - '0'
                      : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                      : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                               : -1;
        if (d < 0) error(at, "truncated escape in string literal");
        v = v * 16 + static_cast<uint32_t>(d);
      }
      return v;
    };
    while (true) {
      if (p >= src_.size()) error(pos, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) error(pos, "unterminated string literal");
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case 'a':
          value += '\a';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'n':
          value += '\n';
          break;
        case 'r':
          value += '\r';
          break;
        case 't':
          value += '\t';
          break;
        case 'v':
          value += '\v';
          break;
        case 'x':
          append_utf8(value, hex(p, 2));
          p += 2;
          break;
        case 'u':
          append_utf8(value, hex(p, 4));
          p += 4;
          break;
        case 'U': {
          const uint32_t cp = hex(p, 8);
          if (cp > 0x10ffff) error(p, "invalid escape in string literal");
          append_utf8(value, cp);
          p += 8;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i)
              v = v * 8 + static_cast<uint32_t>(src_[p++] - '0');
            append_utf8(value, v);
          } else {
            value += '\\';
            value += e;
          }
      }
    }
    push(TokenType::kString, std::move(value), pos);
    return p + 1;
  }

  size_t lex_operator(size_t pos, std::vector<char>& brackets) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (src_.compare(pos, 2, op) == 0) {
        push(TokenType::kOperator, std::string(op), pos);
        return pos + 2;
      }
    }
    const char c = src_[pos];
    if (std::string_view("+-*/%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      error(pos, std::string("unexpected character '") + c + "'");
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty() || brackets.back() != c) error(pos, std::string("unexpected '") + c + "'");
      brackets.pop_back();
    }
    push(TokenType::kOperator, std::string(1, c), pos);
    return pos + 1;
  }

  std::string src_;
  LexOptions options_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexOptions& options) {
  return Lexer(normalize_newlines(source), options).run();
}

}  // namespace loom::text::jinja
