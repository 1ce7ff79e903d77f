#include "weights/quant/bit_packing.h"

#include <cstring>

#include "core/error.h"

namespace loom::weights::quant {

int64_t packed_words(int64_t count, int bits) {
  if (bits < 1 || bits > 8 || (count * bits) % 32 != 0) {
    fail(ErrorKind::kInternal, "{} codes of {} bits do not fill whole 32-bit words", count, bits);
  }
  return count * bits / 32;
}

void pack_bits(const uint8_t* codes, int64_t count, int bits, uint32_t* words) {
  const int64_t word_count = packed_words(count, bits);
  std::memset(words, 0, static_cast<size_t>(word_count) * sizeof(uint32_t));
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t code = codes[i];
    if (code > mask) fail(ErrorKind::kInternal, "code {} does not fit in {} bits", code, bits);
    const int64_t bit = i * bits;
    const int64_t word = bit >> 5;
    const int shift = static_cast<int>(bit & 31);
    words[word] |= code << shift;
    if (shift + bits > 32) words[word + 1] |= code >> (32 - shift);
  }
}

void unpack_bits(const uint32_t* words, int64_t first, int64_t count, int bits, uint8_t* codes) {
  for (int64_t i = 0; i < count; ++i) codes[i] = static_cast<uint8_t>(code_at(words, first + i, bits));
}

}  // namespace loom::weights::quant
