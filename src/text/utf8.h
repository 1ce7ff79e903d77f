#pragma once
// UTF-8 helpers shared by the tokenizer: decoding with the Unicode "maximal subpart" rule for invalid input (the rule
// Python's errors="replace" and Rust's from_utf8_lossy follow), encoding, and lossy conversion.

#include <cstddef>
#include <string>
#include <string_view>

namespace loom::text::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;

// Decodes the code point starting at s[pos] (pos < s.size()). Returns the number of bytes consumed; on an invalid
// sequence, consumes its maximal subpart (at least one byte) and sets `cp` to U+FFFD and `valid` to false.
std::size_t decode(std::string_view s, std::size_t pos, char32_t& cp, bool& valid);

// Decodes the code point at s[pos] of text already known to be valid UTF-8.
inline std::size_t decode_valid(std::string_view s, std::size_t pos, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  auto cont = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[pos + k]) & 0x3F); };
  if (b0 < 0xE0) {
    cp = (static_cast<char32_t>(b0 & 0x1F) << 6) | cont(1);
    return 2;
  }
  if (b0 < 0xF0) {
    cp = (static_cast<char32_t>(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    return 3;
  }
  cp = (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
  return 4;
}

// Byte length of the valid sequence whose first byte is `b0`.
inline std::size_t sequence_length(unsigned char b0) {
  return b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
}

void append(std::string& out, char32_t cp);
bool is_valid(std::string_view s);

// Returns `s` with every invalid sequence replaced by U+FFFD (one per maximal subpart).
std::string to_valid(std::string_view s);

}  // namespace loom::text::utf8
