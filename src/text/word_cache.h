#pragma once
// A bounded cache word -> ids for a tokenizer model, safe to share between threads. Words and ids live in two flat
// arenas and the index is one open-addressing array of (hash, offsets), so a lookup costs one hash of the word, about
// one probe and one compare, with no allocation; a std::unordered_map<std::string, std::vector> spent several cache
// misses per word and was the largest single cost of encoding. When full it stops taking new words.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace loom::text {

class WordCache {
 public:
  // Words shorter than 256 bytes are cached, as in Hugging Face tokenizers (whose cache holds 10,000 of them); at
  // most 16 MiB of word text is kept.
  static constexpr std::size_t kMaxWordBytes = 255;
  static constexpr std::size_t kMaxEntries = std::size_t{1} << 16;

  // Appends the cached ids of `word` to `ids` and returns true, or returns false when it is not cached.
  bool lookup(std::string_view word, std::vector<std::int32_t>& ids) const;
  // Caches `word` -> `ids` (a no-op when the word is too long, already present or the cache is full).
  void insert(std::string_view word, const std::int32_t* ids, std::size_t count);

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t word_offset = 0;
    std::uint32_t ids_offset = 0;
    std::uint16_t word_size = 0;
    std::uint16_t ids_count = 0;
    bool used = false;
  };
  static std::uint64_t hash_of(std::string_view word);
  const Slot* find(std::string_view word, std::uint64_t hash) const;
  void grow();

  mutable std::mutex mutex_;
  std::vector<Slot> slots_;
  std::size_t used_ = 0;
  std::string words_;
  std::vector<std::int32_t> ids_;
};

}  // namespace loom::text
