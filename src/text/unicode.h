#pragma once
// Unicode character classes and normalisation (utf8proc) with the meanings Hugging Face tokenizers gives them
// (Rust's char::is_whitespace, char::is_numeric, char::to_lowercase, Unicode P* punctuation), plus the byte <->
// character table of GPT-2 style byte-level BPE.

#include <array>
#include <string>
#include <string_view>

namespace loom::text::unicode {

bool is_whitespace(char32_t cp);    // the White_Space property
bool is_numeric(char32_t cp);       // general categories Nd, Nl, No
bool is_punctuation(char32_t cp);   // ASCII punctuation or general category P*
bool is_alphanumeric(char32_t cp);  // Alphabetic-ish (L*, Nl) or numeric
bool is_mark(char32_t cp);          // general categories Mn, Mc, Me

enum class Form { kNfc, kNfd, kNfkc, kNfkd };
// Normalises valid UTF-8 text (embedded NULs allowed).
std::string normalize(std::string_view text, Form form);
// Char-by-char full lowercase mapping (no context rules), as Rust's char::to_lowercase.
std::string lowercase(std::string_view text);

// GPT-2's reversible byte -> printable character table, as UTF-8 strings, and its inverse (-1: not a table char).
const std::array<std::string, 256>& byte_to_char();
int char_to_byte(char32_t cp);

}  // namespace loom::text::unicode
