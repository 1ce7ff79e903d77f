#include "text/word_cache.h"

#include <cstring>

namespace loom::text {

std::uint64_t WordCache::hash_of(std::string_view word) {
  // FNV-1a over 8-byte chunks (read with memcpy: no unaligned loads), then a final avalanche.
  std::uint64_t h = 0xcbf29ce484222325ull ^ word.size();
  std::size_t i = 0;
  for (; i + 8 <= word.size(); i += 8) {
    std::uint64_t chunk;
    std::memcpy(&chunk, word.data() + i, 8);
    h = (h ^ chunk) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < word.size(); ++i) h = (h ^ static_cast<unsigned char>(word[i])) * 0x100000001b3ull;
  h ^= h >> 32;
  h *= 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

const WordCache::Slot* WordCache::find(std::string_view word, std::uint64_t hash) const {
  if (slots_.empty()) return nullptr;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (!slot.used) return nullptr;
    if (slot.hash == hash && slot.word_size == word.size() &&
        std::memcmp(words_.data() + slot.word_offset, word.data(), word.size()) == 0) {
      return &slot;
    }
  }
}

bool WordCache::lookup(std::string_view word, std::vector<std::int32_t>& ids) const {
  if (word.size() > kMaxWordBytes) return false;
  const std::uint64_t hash = hash_of(word);
  std::lock_guard lock(mutex_);
  const Slot* slot = find(word, hash);
  if (slot == nullptr) return false;
  const std::int32_t* begin = ids_.data() + slot->ids_offset;
  ids.insert(ids.end(), begin, begin + slot->ids_count);
  return true;
}

void WordCache::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 4096 : old.size() * 2, Slot{});
  const std::size_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (!slot.used) continue;
    std::size_t i = slot.hash & mask;
    while (slots_[i].used) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

void WordCache::insert(std::string_view word, const std::int32_t* ids, std::size_t count) {
  if (word.size() > kMaxWordBytes || count > UINT16_MAX) return;
  const std::uint64_t hash = hash_of(word);
  std::lock_guard lock(mutex_);
  if (used_ >= kMaxEntries || find(word, hash) != nullptr) return;
  if (2 * (used_ + 1) > slots_.size()) grow();
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = hash & mask;
  while (slots_[i].used) i = (i + 1) & mask;
  slots_[i] = {hash,
               static_cast<std::uint32_t>(words_.size()),
               static_cast<std::uint32_t>(ids_.size()),
               static_cast<std::uint16_t>(word.size()),
               static_cast<std::uint16_t>(count),
               true};
  words_.append(word);
  ids_.insert(ids_.end(), ids, ids + count);
  ++used_;
}

}  // namespace loom::text
