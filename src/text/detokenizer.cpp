#include "text/detokenizer.h"

#include <span>

namespace loom::text {
namespace {

bool ends_with_replacement(const std::string& text) {
  return text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

std::string Detokenizer::push(std::int32_t id) {
  ids_.push_back(id);
  const std::span<const std::int32_t> all(ids_);
  const std::string before = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  const std::string after = tokenizer_.decode(all.subspan(prefix_), skip_special_);
  const bool may_be_incomplete = ends_with_replacement(after) && ids_.size() - read_ <= kMaxPendingIds;
  if (after.size() <= before.size() || may_be_incomplete) return {};
  prefix_ = read_;
  read_ = ids_.size();
  return after.substr(before.size());
}

std::string Detokenizer::flush() {
  const std::span<const std::int32_t> all(ids_);
  const std::string before = tokenizer_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  const std::string after = tokenizer_.decode(all.subspan(prefix_), skip_special_);
  prefix_ = read_ = ids_.size();
  return after.size() > before.size() ? after.substr(before.size()) : std::string();
}

}  // namespace loom::text
