#pragma once
// Pieces the OpenAI-shaped routes share: finish_reason and usage objects, byte arrays for logprobs.

#include <nlohmann/json.hpp>
#include <string>

#include "engine/request.h"

namespace loom::server {

// "stop" / "length"; a cancelled request reports "stop" (the client that asked is gone by then, or the server is
// shutting down), errors never reach here.
nlohmann::ordered_json finish_reason(engine::FinishReason reason);
nlohmann::ordered_json usage_json(const engine::Usage& usage);
// UTF-8 bytes as an array of integers (OpenAI logprobs `bytes`).
nlohmann::ordered_json byte_array(const std::string& bytes);
const char* system_fingerprint();

}  // namespace loom::server
