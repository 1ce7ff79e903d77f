// Request parsing of the generation routes: any bytes as a JSON body → the OpenAI chat, OpenAI completions and
// Anthropic messages validation (generation parameters, the Anthropic → chat translation, the chat request parser).
// Bad input must end in loom::Error, never in a crash, a hang or another exception type.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "prompt/chat_request.h"
#include "server/anthropic_translate.h"
#include "server/generation_params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using Json = nlohmann::ordered_json;
  const auto body = Json::parse(data, data + size, nullptr, false);
  if (body.is_discarded()) return 0;
  for (const auto api : {loom::server::Api::kChat, loom::server::Api::kCompletions, loom::server::Api::kMessages}) {
    try {
      const auto params = loom::server::parse_generation_params(body, api);
      (void)loom::server::effective_max_tokens(params, 10, 2048, 4096);
    } catch (const loom::Error&) {
    }
  }
  try {
    (void)loom::prompt::parse_chat_request(body);
  } catch (const loom::Error&) {
  }
  try {
    (void)loom::prompt::parse_chat_request(loom::server::anthropic_to_chat(body));
  } catch (const loom::Error&) {
  }
  return 0;
}
