#include "server/openai_common.h"

namespace loom::server {

nlohmann::ordered_json finish_reason(engine::FinishReason reason) {
  return reason == engine::FinishReason::kLength ? "length" : "stop";
}

nlohmann::ordered_json usage_json(const engine::Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

nlohmann::ordered_json byte_array(const std::string& bytes) {
  auto out = nlohmann::ordered_json::array();
  for (const char c : bytes) out.push_back(static_cast<int>(static_cast<unsigned char>(c)));
  return out;
}

const char* system_fingerprint() {
  return "fp_loom_0_1_0";
}

}  // namespace loom::server
