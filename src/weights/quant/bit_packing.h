#pragma once
// MLX packing of quantized codes (weight-formats.md §2): a row is a little-endian, LSB-first bitstream of uint32
// words; element i occupies bits [i·b, (i+1)·b). For 3, 5 and 6 bits an element can straddle two words. Groups hold
// a multiple of 32 elements (16 for nvfp4's 4-bit codes, i.e. 64 bits), so every group starts on a word boundary.

#include <cstdint>

namespace loom::weights::quant {

// Words holding `count` codes of `bits` bits; count·bits must be a multiple of 32.
int64_t packed_words(int64_t count, int bits);

// Packs `count` codes (each < 2^bits) into packed_words(count, bits) words, overwriting them.
void pack_bits(const uint8_t* codes, int64_t count, int bits, uint32_t* words);

// Reads codes [first, first + count) of the bitstream starting at `words`.
void unpack_bits(const uint32_t* words, int64_t first, int64_t count, int bits, uint8_t* codes);

// Code `index` of the bitstream.
inline uint32_t code_at(const uint32_t* words, int64_t index, int bits) {
  const int64_t bit = index * bits;
  const int64_t word = bit >> 5;
  const int shift = static_cast<int>(bit & 31);
  uint64_t window = words[word] >> shift;
  if (shift + bits > 32) window |= static_cast<uint64_t>(words[word + 1]) << (32 - shift);
  return static_cast<uint32_t>(window) & ((1u << bits) - 1u);
}

}  // namespace loom::weights::quant
