#pragma once
// Python's text semantics that templates observe: UTF-8 code points, str.isspace, case mapping, repr() of floats
// and strings, and str.splitlines separators. Strings are UTF-8 throughout; invalid bytes decode as U+FFFD.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace loom::text::jinja {

std::vector<char32_t> decode_utf8(std::string_view text);
void append_utf8(std::string& out, char32_t code_point);
std::string encode_utf8(const std::vector<char32_t>& code_points);

bool py_isspace(char32_t c);
bool py_is_line_break(char32_t c);  // the separators str.splitlines() splits on
bool py_isalpha(char32_t c);
bool py_isdigit(char32_t c);
bool py_is_cased(char32_t c);
bool py_isprintable(char32_t c);

std::string py_upper(std::string_view text);
std::string py_lower(std::string_view text);
std::string py_capitalize(std::string_view text);  // first upper, rest lower
std::string py_title(std::string_view text);       // str.title(): words are runs of cased letters

std::string py_float_repr(double value);
std::string py_string_repr(std::string_view text);

// Python str.strip/lstrip/rstrip; `chars` null strips whitespace.
std::string py_strip(std::string_view text, const std::string* chars, bool left, bool right);
// Python str.split(sep, maxsplit) (sep null: runs of whitespace) and str.rsplit.
std::vector<std::string> py_split(std::string_view text, const std::string* sep, int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view text, const std::string* sep, int64_t maxsplit);
std::vector<std::string> py_splitlines(std::string_view text);
std::string py_replace(std::string_view text, std::string_view old, std::string_view replacement, int64_t count);
size_t py_count(std::string_view text, std::string_view needle);
// Python str.find in code points (-1 when absent).
int64_t py_find(std::string_view text, std::string_view needle, bool reverse);

}  // namespace loom::text::jinja
