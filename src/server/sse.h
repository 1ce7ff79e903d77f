#pragma once
// Server-sent events as the OpenAI and Anthropic streaming APIs write them: `data: <json>\n\n` (OpenAI, ending with
// `data: [DONE]`) and `event: <name>\ndata: <json>\n\n` (Anthropic). JSON is written compactly on one line, invalid
// UTF-8 replaced, so a payload never contains a newline that would split the event.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace loom::server {

std::string sse_data(const nlohmann::ordered_json& payload);
std::string sse_event(std::string_view event, const nlohmann::ordered_json& payload);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";
// A comment line: keeps an idle stream alive (and shows a client that has gone away) without an event.
inline constexpr std::string_view kSseKeepAlive = ": keep-alive\n\n";

// Compact one-line JSON with invalid UTF-8 replaced by U+FFFD.
std::string dump_json(const nlohmann::ordered_json& value);

}  // namespace loom::server
