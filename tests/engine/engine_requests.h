#pragma once
// Requests and token collection shared by the engine tests that drive a tensor-parallel model through the Engine.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/engine.h"

namespace loom::engine::testing {

// A greedy request that generates exactly max_tokens (model stop ids ignored).
inline Request text_request(std::vector<int32_t> prompt, int64_t max_tokens) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  r.stop.ignore_model_stop_ids = true;
  return r;
}

// Every token of the stream until it finishes (a finish with an error fails the test); waits at most `wait` per event.
inline std::vector<int32_t> tokens_of(const std::shared_ptr<RequestStream>& stream,
                                      std::chrono::milliseconds wait = std::chrono::seconds(30)) {
  std::vector<int32_t> out;
  while (auto event = stream->next(wait)) {
    if (event->kind == StreamEvent::Kind::kFinish) {
      EXPECT_NE(event->reason, FinishReason::kError) << event->error;
      break;
    }
    out.push_back(event->token);
  }
  return out;
}

}  // namespace loom::engine::testing
