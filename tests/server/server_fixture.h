#pragma once
// A loom server on a free port over the tiny_chat snapshot, shared by the HTTP tests of one suite, plus helpers to
// talk to it with httplib's client and to read server-sent events.

#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "server/http_server.h"
#include "server/model_registry.h"

namespace loom::server::testing {

inline std::string tiny_chat_dir() {
  return std::string(LOOM_SOURCE_DIR) + "/tests/golden/snapshots/tiny_chat";
}

class RunningServer {
 public:
  RunningServer(ModelRegistry& registry, HttpOptions options) : server_(registry, std::move(options)) {
    port_ = server_.bind();
    thread_ = std::thread([this] { server_.serve(); });
  }
  ~RunningServer() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  HttpServer& server() { return server_; }
  httplib::Client client(const std::string& key = "") const {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(60);
    if (!key.empty()) client.set_bearer_token_auth(key);
    return client;
  }

 private:
  HttpServer server_;
  int port_ = 0;
  std::thread thread_;
};

struct SseEvent {
  std::string event;  // empty when the server sent no `event:` line
  std::string data;
};

// Splits an SSE body into events (comment lines skipped).
inline std::vector<SseEvent> parse_sse(const std::string& body) {
  std::vector<SseEvent> out;
  SseEvent current;
  bool any = false;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    const std::string line = body.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) {
      if (any) out.push_back(current);
      current = {};
      any = false;
    } else if (line.rfind("event: ", 0) == 0) {
      current.event = line.substr(7);
      any = true;
    } else if (line.rfind("data: ", 0) == 0) {
      current.data = line.substr(6);
      any = true;
    }
  }
  if (any) out.push_back(current);
  return out;
}

}  // namespace loom::server::testing
