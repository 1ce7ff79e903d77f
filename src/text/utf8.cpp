#include "text/utf8.h"

namespace loom::text::utf8 {

std::size_t decode(std::string_view s, std::size_t pos, char32_t& cp, bool& valid) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[pos + k]); };
  const unsigned char b0 = byte(0);
  valid = true;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  // Table 3-7 of the Unicode standard: the allowed range of the second byte depends on the first.
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    valid = false;
    cp = kReplacement;
    return 1;
  }
  char32_t value = b0 & (0x3F >> need);
  for (std::size_t k = 1; k <= need; ++k) {
    if (pos + k >= s.size()) {
      valid = false;
      cp = kReplacement;
      return k;
    }
    const unsigned char b = byte(k);
    const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) {
      valid = false;
      cp = kReplacement;
      return k;
    }
    value = (value << 6) | (b & 0x3F);
  }
  cp = value;
  return need + 1;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid(std::string_view s) {
  char32_t cp;
  bool valid;
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    i += decode(s, i, cp, valid);
    if (!valid) return false;
  }
  return true;
}

std::string to_valid(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  char32_t cp;
  bool valid;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = decode(s, i, cp, valid);
    if (valid) {
      out.append(s.substr(i, n));
    } else {
      append(out, kReplacement);
    }
    i += n;
  }
  return out;
}

}  // namespace loom::text::utf8
