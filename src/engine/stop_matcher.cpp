#include "engine/stop_matcher.h"

#include <algorithm>

namespace loom::engine {

StopMatcher::StopMatcher(std::vector<int32_t> stop_ids, std::vector<std::string> stop_strings)
    : ids_(std::move(stop_ids)) {
  for (std::string& s : stop_strings) {
    if (!s.empty()) strings_.push_back(std::move(s));
  }
}

bool StopMatcher::is_stop_id(int32_t id) const {
  return std::find(ids_.begin(), ids_.end(), id) != ids_.end();
}

size_t StopMatcher::earliest_match(size_t& which) const {
  size_t best = std::string::npos;
  for (size_t i = 0; i < strings_.size(); ++i) {
    const size_t at = held_.find(strings_[i]);
    if (at < best) {
      best = at;
      which = i;
    }
  }
  return best;
}

size_t StopMatcher::pending_start() const {
  // Scan from the left so the first hit is the longest suffix.
  for (size_t start = 0; start < held_.size(); ++start) {
    const std::string_view suffix = std::string_view(held_).substr(start);
    for (const std::string& s : strings_) {
      if (suffix.size() < s.size() && s.compare(0, suffix.size(), suffix) == 0) return start;
    }
  }
  return held_.size();
}

std::string StopMatcher::take(size_t count) {
  std::string out = held_.substr(0, count);
  held_.erase(0, count);
  return out;
}

std::string StopMatcher::push(std::string_view delta) {
  if (stopped()) return {};
  held_.append(delta);
  size_t which = 0;
  const size_t match = earliest_match(which);
  const size_t pending = pending_start();
  if (match != std::string::npos && match <= pending) {
    // No unfinished candidate starts before this match, so nothing later can start earlier.
    matched_ = strings_[which];
    std::string out = held_.substr(0, match);
    held_.clear();
    return out;
  }
  return take(std::min(match, pending));
}

std::string StopMatcher::flush() {
  if (stopped()) return {};
  size_t which = 0;
  const size_t match = earliest_match(which);
  if (match != std::string::npos) {
    matched_ = strings_[which];
    std::string out = held_.substr(0, match);
    held_.clear();
    return out;
  }
  return take(held_.size());
}

}  // namespace loom::engine
