#pragma once
// Requests and token collection shared by the engine tests that drive a tensor-parallel model through the Engine.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/engine.h"
#include "engine/test_model.h"

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

// A greedy request whose prompt holds one 4-row image (3 text tokens, 4 image soft tokens, 2 text tokens; TestModel
// embeds image row r as 100·pixel + r), and the tokens the reference recurrence says it generates.
struct ImageCase {
  Request request;
  std::vector<int32_t> expected;
};

inline ImageCase image_case(int64_t max_tokens) {
  const std::vector<int32_t> prompt = {5, 6, 7, kImageToken, kImageToken, kImageToken, kImageToken, 8, 9};
  ImageCase c{text_request(prompt, max_tokens), {}};
  ImageInput image;
  image.start = 3;
  image.length = 4;
  image.pixels.pixel_values = Tensor::zeros(DType::kF32, {1});
  image.pixels.pixel_values.data_as<float>()[0] = 0.25f;
  image.pixels.soft_tokens = 4;
  c.request.images.push_back(std::move(image));
  std::vector<double> keys(prompt.begin(), prompt.end());
  for (int i = 0; i < 4; ++i) keys[3 + i] = 25.0 + i;
  std::vector<int64_t> positions;
  for (size_t i = 0; i < prompt.size(); ++i) positions.push_back(static_cast<int64_t>(i));
  c.expected = reference_generate(keys, positions, max_tokens, [](int64_t i) { return i; });
  return c;
}

}  // namespace loom::engine::testing
