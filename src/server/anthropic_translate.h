#pragma once
// Anthropic Messages request ↔ loom's chat form. The request side turns `system` (a string or text blocks) into a
// leading system message and checks each message's blocks (text, image with a base64 or url source; image blocks
// pass through, prompt::parse_chat_request reads them). The response side maps a finish to stop_reason.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/request.h"

namespace loom::server {

// {"messages": [...]} in the OpenAI chat form parse_chat_request takes. Throws ParamError naming the field
// (`messages[1].content[0].type`).
nlohmann::ordered_json anthropic_to_chat(const nlohmann::ordered_json& body);

struct StopReason {
  std::string reason;                        // end_turn, max_tokens, stop_sequence
  std::optional<std::string> stop_sequence;  // the matched stop sequence
};
StopReason anthropic_stop_reason(const engine::StreamEvent& finish);

}  // namespace loom::server
