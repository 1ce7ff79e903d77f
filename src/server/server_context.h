#pragma once
// What the route handlers share: the models, the metrics and the server's limits.

#include <atomic>
#include <cstdint>
#include <string>

#include "prompt/image_inputs.h"
#include "server/metrics.h"
#include "server/model_registry.h"

namespace loom::server {

struct ServerLimits {
  int64_t max_tokens_cap = 4096;  // completion tokens per request at most
  size_t max_images = 16;         // images per request
  int image_max_tokens = 0;       // Gemma 4 soft tokens per image when a request names none; 0: the config's
  prompt::ImageSourceOptions sources;
};

struct ServerContext {
  ModelRegistry& registry;
  Metrics& metrics;
  ServerLimits limits;
  std::atomic<bool> stopping{false};  // graceful shutdown: generation loops cancel their requests
};

}  // namespace loom::server
