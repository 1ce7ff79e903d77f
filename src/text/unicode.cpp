#include "text/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "text/utf8.h"

namespace loom::text::unicode {
namespace {

utf8proc_category_t category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

struct ByteTable {
  std::array<std::string, 256> to_char;
  std::array<int, 512> to_byte;  // every table character is below U+0200
  ByteTable() {
    to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      // Printable Latin-1 bytes stand for themselves; the rest are moved to U+0100 and up, in byte order.
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : next++;
      utf8::append(to_char[b], static_cast<char32_t>(cp));
      to_byte[cp] = b;
    }
  }
};

const ByteTable& table() {
  static const ByteTable t;
  return t;
}

}  // namespace

bool is_whitespace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_numeric(char32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(char32_t cp) {
  if (cp < 0x80)
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
           (cp >= 0x7B && cp <= 0x7E);
  const auto c = category(cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool is_alphanumeric(char32_t cp) {
  const auto c = category(cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || is_numeric(cp);
}

bool is_mark(char32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

namespace {

// Appends the normalisation of `segment` (valid UTF-8) to `out`.
void normalize_segment(std::string_view segment, Form form, int options, std::string& out) {
  // Under NFC a segment whose code points all lie below U+0300 is unchanged (none of them decomposes canonically
  // and none is a combining mark that could compose with what precedes it), and so is one in the CJK Unified
  // Ideographs and Hangul Syllables blocks (no canonical decompositions; a syllable only composes with a following
  // conjoining jamo, which is outside these ranges).
  if (form == Form::kNfc) {
    bool stable = true;
    char32_t cp;
    for (std::size_t i = 0; stable && i < segment.size();) {
      i += utf8::decode_valid(segment, i, cp);
      stable = cp < 0x300 || (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7A3);
    }
    if (stable) {
      out.append(segment);
      return;
    }
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(segment.data()),
                   static_cast<utf8proc_ssize_t>(segment.size()), &result, static_cast<utf8proc_option_t>(options));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(result, &std::free);
  if (n < 0) fail(ErrorKind::kInvalidRequest, "Unicode normalisation failed: {}", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(result), static_cast<std::size_t>(n));
}

}  // namespace

std::string normalize(std::string_view text, Form form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case Form::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case Form::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case Form::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case Form::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  // Every form leaves an ASCII character as it is, and an ASCII character never reorders with or composes onto what
  // precedes it (it is a starter and never the second half of a composition). So the text can be cut before each
  // ASCII character and the pieces normalised one by one: single ASCII characters are copied, and only the pieces
  // that hold non-ASCII text (with the ASCII character in front, which may take a following combining mark) go
  // through utf8proc.
  std::string out;
  out.reserve(text.size());
  const auto ascii = [&](std::size_t i) { return static_cast<unsigned char>(text[i]) < 0x80; };
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = pos + 1;
    while (end < text.size() && !ascii(end)) ++end;
    if (end == pos + 1 && ascii(pos)) {
      out.push_back(text[pos]);
    } else {
      normalize_segment(text.substr(pos, end - pos), form, options, out);
    }
    pos = end;
  }
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char32_t cp;
  for (std::size_t i = 0; i < text.size();) {
    i += utf8::decode_valid(text, i, cp);
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
    } else if (cp == 0x130) {
      out += "i\xCC\x87";  // the one unconditional multi-character lowercase mapping (SpecialCasing.txt)
    } else {
      utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
    }
  }
  return out;
}

const std::array<std::string, 256>& byte_to_char() {
  return table().to_char;
}

int char_to_byte(char32_t cp) {
  return cp < 512 ? table().to_byte[cp] : -1;
}

}  // namespace loom::text::unicode
