// POST /tokenize and /detokenize (the vLLM shapes): text or chat messages → token ids, ids → text.

#include "prompt/chat_request.h"
#include "server/api_error.h"
#include "server/generation_params.h"
#include "server/routes.h"
#include "server/sse.h"

namespace loom::server {

using Json = nlohmann::ordered_json;

Reply tokenize(ServerContext& context, const Json& body) {
  const auto model = context.registry.acquire(requested_model(body));
  std::vector<int32_t> ids;
  const bool add_special = !body.contains("add_special_tokens") || !body["add_special_tokens"].is_boolean() ||
                           body["add_special_tokens"].get<bool>();
  if (body.contains("messages")) {
    if (!body["messages"].is_array() || body["messages"].empty()) {
      fail_param("messages", "'messages' must be a non-empty array");
    }
    prompt::BuildOptions options;
    options.limits.max_images = context.limits.max_images;
    options.sources = context.limits.sources;
    options.default_image_max_tokens = context.limits.image_max_tokens;
    ids = model->builder->build(prompt::parse_chat_request(body), options).ids;
  } else if (body.contains("content") || body.contains("prompt")) {
    const Json& content = body.contains("content") ? body["content"] : body["prompt"];
    if (!content.is_string()) fail_param("content", "'content' must be a string");
    ids = model->builder->tokenizer().encode(content.get<std::string>(), add_special);
  } else {
    fail_param("content", "give 'content' (a string) or 'messages'");
  }
  Json out = {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", model->max_sequence_tokens}};
  return json_reply(dump_json(out));
}

Reply detokenize(ServerContext& context, const Json& body) {
  const auto model = context.registry.acquire(requested_model(body));
  if (!body.contains("tokens") || !body["tokens"].is_array()) {
    fail_param("tokens", "'tokens' must be an array of token ids");
  }
  const auto vocab = model->engine->info().vocab_size;
  std::vector<int32_t> ids;
  for (size_t i = 0; i < body["tokens"].size(); ++i) {
    const Json& id = body["tokens"][i];
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab) {
      fail_param("tokens", "'tokens[{}]' must be a token id from 0 to {}", i, vocab - 1);
    }
    ids.push_back(id.get<int32_t>());
  }
  return json_reply(dump_json(Json{{"prompt", model->builder->tokenizer().decode(ids, false)}}));
}

}  // namespace loom::server
