#include "engine/request_stream.h"

namespace loom::engine {

std::string_view finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "error";
}

void RequestStream::push(StreamEvent event) {
  {
    std::lock_guard lock(mutex_);
    if (finished_) return;  // nothing follows a finish event
    finished_ = event.kind == StreamEvent::Kind::kFinish;
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
}

bool RequestStream::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

std::optional<StreamEvent> RequestStream::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty() || drained_; })) return std::nullopt;
  if (events_.empty()) return std::nullopt;
  StreamEvent event = std::move(events_.front());
  events_.pop_front();
  if (event.kind == StreamEvent::Kind::kFinish) drained_ = true;
  return event;
}

std::optional<StreamEvent> RequestStream::next() {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [&] { return !events_.empty() || drained_; });
  if (events_.empty()) return std::nullopt;
  StreamEvent event = std::move(events_.front());
  events_.pop_front();
  if (event.kind == StreamEvent::Kind::kFinish) drained_ = true;
  return event;
}

Completion RequestStream::collect() {
  Completion out;
  while (std::optional<StreamEvent> event = next()) {
    out.text += event->text;
    if (event->kind == StreamEvent::Kind::kFinish) {
      out.finish = std::move(*event);
      break;
    }
    out.tokens.push_back(event->token);
    out.token_events.push_back(std::move(*event));
  }
  return out;
}

}  // namespace loom::engine
