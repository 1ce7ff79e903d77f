#pragma once
// The HTTP layer: routes on cpp-httplib, the body cap, API-key auth (Authorization: Bearer or x-api-key), CORS, the
// access log and per-route metrics, and error envelopes (OpenAI's, or Anthropic's under /v1/messages). Route handlers
// (routes.h) see JSON bodies and return Replies; they never see httplib.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/server_context.h"

namespace httplib {
class Server;
}

namespace loom::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                        // 0: any free port
  std::string api_key;                    // empty: no authentication
  std::vector<std::string> cors_origins;  // allowed Origin values ("*" for any); empty: no CORS headers
  size_t max_body_bytes = size_t{32} << 20;
  int threads = 64;  // HTTP worker threads (each open connection holds one while it is served)
  ServerLimits limits;
};

class HttpServer {
 public:
  HttpServer(ModelRegistry& registry, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the socket; returns the port (the real one for port 0). Throws loom::Error when binding fails.
  int bind();
  // Serves until stop(); call after bind().
  void serve();
  // Stops accepting, cancels generations in flight; serve() returns once their handlers finish. Any thread.
  void stop();

  int port() const { return port_; }
  const std::string& host() const { return options_.host; }
  Metrics& metrics() { return metrics_; }
  ServerContext& context() { return context_; }

 private:
  void install_routes();

  ModelRegistry& registry_;
  HttpOptions options_;
  Metrics metrics_;
  ServerContext context_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = -1;
};

}  // namespace loom::server
