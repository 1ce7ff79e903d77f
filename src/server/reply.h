#pragma once
// What a route handler hands back to the HTTP layer: a whole body, or a stream written piece by piece. Handlers do
// not see httplib; http_server.cpp turns a Reply into a response.

#include <functional>
#include <string>
#include <string_view>

namespace loom::server {

// Writes one piece to the client right away; false when the client is gone.
using Write = std::function<bool(std::string_view)>;

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Set for streaming replies: runs on the HTTP thread after the headers are sent and writes the whole stream.
  std::function<void(const Write& write)> stream;
  // Runs once when the response is over; `completed` is false when the client went away or writing failed.
  std::function<void(bool completed)> on_close;
};

// A 200 JSON reply.
inline Reply json_reply(std::string body) {
  Reply reply;
  reply.body = std::move(body);
  return reply;
}

}  // namespace loom::server
