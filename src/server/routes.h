#pragma once
// The generation and utility routes, each body → Reply (http_server.cpp parses JSON, checks auth and writes replies).

#include <nlohmann/json.hpp>
#include <string>

#include "server/reply.h"
#include "server/server_context.h"

namespace loom::server {

// POST /v1/chat/completions (openai_chat.cpp).
Reply chat_completions(ServerContext& context, const nlohmann::ordered_json& body);
// POST /v1/completions (openai_completions.cpp).
Reply completions(ServerContext& context, const nlohmann::ordered_json& body);
// POST /v1/messages (anthropic_messages.cpp).
Reply anthropic_messages(ServerContext& context, const nlohmann::ordered_json& body);

// POST /tokenize and /detokenize (tokenize_routes.cpp).
Reply tokenize(ServerContext& context, const nlohmann::ordered_json& body);
Reply detokenize(ServerContext& context, const nlohmann::ordered_json& body);

// GET /v1/models, /v1/models/{id}, /v1/models/{id}/status; POST /v1/models/{id}/load, /unload (model_routes.cpp).
Reply list_models(ServerContext& context);
Reply get_model(ServerContext& context, const std::string& id);
Reply model_status(ServerContext& context, const std::string& id);
Reply load_model(ServerContext& context, const std::string& id);
Reply unload_model(ServerContext& context, const std::string& id);

}  // namespace loom::server
