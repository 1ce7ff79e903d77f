#include "server/sse.h"

namespace loom::server {

std::string dump_json(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string sse_data(const nlohmann::ordered_json& payload) {
  return "data: " + dump_json(payload) + "\n\n";
}

std::string sse_event(std::string_view event, const nlohmann::ordered_json& payload) {
  std::string out = "event: ";
  out += event;
  out += "\ndata: ";
  out += dump_json(payload);
  out += "\n\n";
  return out;
}

}  // namespace loom::server
