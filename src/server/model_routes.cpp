// The model routes: OpenAI's model list and model objects, plus loom's load / unload / status.

#include "server/api_error.h"
#include "server/routes.h"
#include "server/sse.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

Json model_object(const ModelStatus& status) {
  return {{"id", status.id}, {"object", "model"}, {"created", status.created}, {"owned_by", "loom"}};
}

Json status_object(const ModelStatus& status) {
  Json out = {{"id", status.id}, {"object", "model.status"}, {"state", status.state}, {"path", status.dir}};
  if (status.info) {
    out["architecture"] = status.info->architecture;
    out["context_length"] = status.max_sequence_tokens;
    out["vocab_size"] = status.info->vocab_size;
    out["vision"] = status.info->image_token_id >= 0;
  }
  if (status.stats) {
    const auto& s = *status.stats;
    out["engine"] = {{"queued", s.queued},
                     {"running", s.running},
                     {"kv_blocks_used", s.kv_blocks_used},
                     {"kv_blocks_total", s.kv_blocks_total},
                     {"prompt_tokens", s.prompt_tokens},
                     {"generated_tokens", s.generated_tokens},
                     {"requests_finished", s.requests_finished},
                     {"preemptions", s.preemptions}};
  }
  return out;
}

}  // namespace

Reply list_models(ServerContext& context) {
  Json data = Json::array();
  for (const auto& status : context.registry.statuses()) data.push_back(model_object(status));
  return json_reply(dump_json(Json{{"object", "list"}, {"data", std::move(data)}}));
}

Reply get_model(ServerContext& context, const std::string& id) {
  return json_reply(dump_json(model_object(context.registry.status(id))));
}

Reply model_status(ServerContext& context, const std::string& id) {
  return json_reply(dump_json(status_object(context.registry.status(id))));
}

Reply load_model(ServerContext& context, const std::string& id) {
  context.registry.acquire(id);
  return json_reply(dump_json(status_object(context.registry.status(id))));
}

Reply unload_model(ServerContext& context, const std::string& id) {
  context.registry.unload(id);
  return json_reply(dump_json(status_object(context.registry.status(id))));
}

}  // namespace loom::server
