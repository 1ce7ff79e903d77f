#pragma once
// The caller's end of one submitted request: a queue of events filled by the engine's worker thread and drained by
// the caller, plus a cancellation flag the worker checks before every step. All members are safe to call from any
// thread; a stream may outlive the engine (it then holds its final events).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include "engine/request.h"

namespace loom::engine {

// Everything one request produced, gathered from its events (for callers that do not stream).
struct Completion {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<StreamEvent> token_events;
  StreamEvent finish;
};

class RequestStream {
 public:
  explicit RequestStream(uint64_t id) : id_(id) {}

  uint64_t id() const { return id_; }

  // The next event, waiting up to `timeout`; nullopt when none arrived in time or after the finish event was taken.
  std::optional<StreamEvent> next(std::chrono::milliseconds timeout);
  // Waits without a limit; nullopt only after the finish event was taken.
  std::optional<StreamEvent> next();
  // Drains the stream to its finish event.
  Completion collect();

  // Asks the engine to stop this request; it finishes with reason kCancelled at the start of the next step.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancel_requested() const { return cancelled_.load(std::memory_order_relaxed); }
  // True once the engine pushed the finish event.
  bool finished() const;

  // Engine side.
  void push(StreamEvent event);

 private:
  const uint64_t id_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<StreamEvent> events_;
  bool finished_ = false;  // the finish event was pushed
  bool drained_ = false;   // the finish event was taken
};

}  // namespace loom::engine
