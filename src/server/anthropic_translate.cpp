#include "server/anthropic_translate.h"

#include "server/api_error.h"

namespace loom::server {

using Json = nlohmann::ordered_json;

namespace {

Json text_blocks(const Json& blocks, const std::string& where, bool allow_images) {
  Json out = Json::array();
  for (size_t i = 0; i < blocks.size(); ++i) {
    const Json& block = blocks[i];
    const std::string at = fmt::format("{}[{}]", where, i);
    if (!block.is_object() || !block.contains("type") || !block["type"].is_string()) {
      fail_param(at, "'{}' must be an object with a string 'type'", at);
    }
    const auto type = block["type"].get<std::string>();
    if (type == "text") {
      if (!block.contains("text") || !block["text"].is_string()) fail_param(at, "'{}.text' must be a string", at);
      out.push_back({{"type", "text"}, {"text", block["text"]}});
    } else if (type == "image" && allow_images) {
      const Json* source = block.contains("source") ? &block["source"] : nullptr;
      if (!source || !source->is_object() || !source->contains("type") || !(*source)["type"].is_string()) {
        fail_param(at, "'{}.source' must be an object with a 'type' (base64 or url)", at);
      }
      const auto kind = (*source)["type"].get<std::string>();
      if (kind == "base64") {
        if (!source->contains("data") || !(*source)["data"].is_string()) {
          fail_param(at, "'{}.source.data' must be a base64 string", at);
        }
        if (source->contains("media_type") && !(*source)["media_type"].is_string()) {
          fail_param(at, "'{}.source.media_type' must be a string", at);
        }
      } else if (kind == "url") {
        if (!source->contains("url") || !(*source)["url"].is_string()) {
          fail_param(at, "'{}.source.url' must be a string", at);
        }
      } else {
        fail_param(at, "'{}.source.type' must be 'base64' or 'url', got '{}'", at, kind);
      }
      out.push_back({{"type", "image"}, {"source", *source}});
    } else if (type == "image") {
      fail_param(at, "'{}' cannot be an image here", at);
    } else {
      throw ParamError(ErrorKind::kUnsupported, at,
                       fmt::format("'{}' has type '{}': loom takes text and image blocks", at, type));
    }
  }
  return out;
}

}  // namespace

Json anthropic_to_chat(const Json& body) {
  Json messages = Json::array();
  if (const auto system = body.find("system"); system != body.end() && !system->is_null()) {
    if (system->is_string()) {
      if (!system->get_ref<const std::string&>().empty()) {
        messages.push_back({{"role", "system"}, {"content", *system}});
      }
    } else if (system->is_array()) {
      Json blocks = text_blocks(*system, "system", false);
      std::string text;
      for (const auto& block : blocks) text += (text.empty() ? "" : "\n") + block["text"].get<std::string>();
      if (!blocks.empty()) messages.push_back({{"role", "system"}, {"content", text}});
    } else {
      fail_param("system", "'system' must be a string or an array of text blocks");
    }
  }
  const auto input = body.find("messages");
  if (input == body.end()) fail_param("messages", "'messages' is required");
  if (!input->is_array() || input->empty()) fail_param("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < input->size(); ++i) {
    const Json& message = (*input)[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!message.is_object()) fail_param(at, "'{}' must be an object", at);
    if (!message.contains("role") || !message["role"].is_string()) fail_param(at, "'{}.role' must be a string", at);
    const auto role = message["role"].get<std::string>();
    if (role != "user" && role != "assistant") {
      fail_param(at + ".role", "'{}.role' must be 'user' or 'assistant', got '{}'", at, role);
    }
    if (i == 0 && role != "user") {
      fail_param(at + ".role", "the first message must use the 'user' role, got '{}'", role);
    }
    if (!message.contains("content")) fail_param(at + ".content", "'{}.content' is required", at);
    const Json& content = message["content"];
    if (content.is_string()) {
      messages.push_back({{"role", role}, {"content", content}});
    } else if (content.is_array()) {
      messages.push_back({{"role", role}, {"content", text_blocks(content, at + ".content", true)}});
    } else {
      fail_param(at + ".content", "'{}.content' must be a string or an array of content blocks", at);
    }
  }
  return {{"messages", std::move(messages)}};
}

StopReason anthropic_stop_reason(const engine::StreamEvent& finish) {
  if (finish.reason == engine::FinishReason::kLength) return {"max_tokens", std::nullopt};
  if (finish.stop_string) return {"stop_sequence", finish.stop_string};
  return {"end_turn", std::nullopt};
}

}  // namespace loom::server
