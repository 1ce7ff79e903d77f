#include "text/model.h"

#include <algorithm>
#include <functional>

#include "core/error.h"
#include "text/json_fields.h"
#include "text/tokenizer_file.h"

namespace loom::text {

void Vocab::add(std::string token, std::int32_t id, std::string_view what) {
  // Ids index a dense table: bound them so that a hostile file cannot ask for gigabytes.
  if (id < 0 || id > kMaxId) {
    fail(ErrorKind::kInvalidFile, "{}: id {} of \"{}\" is outside 0..{}", what, id, token, kMaxId);
  }
  const auto index = static_cast<std::size_t>(id);
  if (index >= tokens_.size()) {
    tokens_.resize(index + 1);
    present_.resize(index + 1, false);
  }
  if (present_[index]) fail(ErrorKind::kInvalidFile, "{}: id {} is used by two tokens", what, id);
  present_[index] = true;
  tokens_[index] = std::move(token);
  if (2 * (used_ + 1) > slots_.size()) grow();
  const std::string& stored = tokens_[index];
  const auto hash = static_cast<std::uint32_t>(std::hash<std::string_view>{}(stored));
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    if (slots_[i].id < 0) {
      slots_[i] = {hash, id};
      ++used_;
      return;
    }
    // A repeated string keeps its first id (the later id still decodes to it).
    if (slots_[i].hash == hash && tokens_[slots_[i].id] == stored) return;
  }
}

void Vocab::reserve(std::size_t n) {
  tokens_.reserve(n);
  present_.reserve(n);
  std::size_t capacity = 16;
  while (capacity < 2 * n) capacity *= 2;
  if (capacity > slots_.size()) {
    slots_.resize(capacity);  // empty before the first add: nothing to rehash
    if (used_ > 0) grow();
  }
}

void Vocab::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<std::size_t>(16, old.size() * 2), Slot{});
  const std::size_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.id < 0) continue;
    std::size_t i = slot.hash & mask;
    while (slots_[i].id >= 0) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

std::optional<std::int32_t> Vocab::find(std::string_view token) const {
  if (slots_.empty()) return std::nullopt;
  const auto hash = static_cast<std::uint32_t>(std::hash<std::string_view>{}(token));
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.id < 0) return std::nullopt;
    if (slot.hash == hash && tokens_[slot.id] == token) return slot.id;
  }
}

std::unique_ptr<Model> make_model(TokenizerFile& file, std::string_view what) {
  const auto& model = field(file.root, "model", what);
  // Files written by older versions of tokenizers omit "type" for BPE.
  const std::string type = string_or(model, "type", file.has_merges ? "BPE" : "", what);
  if (type == "BPE") return make_bpe_model(file, what);
  if (type == "WordPiece") return make_wordpiece_model(file, what);
  if (type == "Unigram") return make_unigram_model(file, what);
  fail(ErrorKind::kUnsupported, "{}: model type \"{}\" is not supported (BPE, WordPiece and Unigram are)", what, type);
}

}  // namespace loom::text
