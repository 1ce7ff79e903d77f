#include "prompt/chat_request.h"

#include <fmt/format.h>

#include <string_view>

#include "core/error.h"

namespace loom::prompt {
namespace {

using Json = nlohmann::ordered_json;

const Json* member(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string required_string(const Json& object, const char* key, const std::string& where) {
  const Json* value = member(object, key);
  if (!value || !value->is_string()) fail(ErrorKind::kInvalidRequest, "{}.{} must be a string", where, key);
  return value->get<std::string>();
}

// The image reference of an Anthropic-style {"type": "image", "source": {...}} part.
std::string anthropic_reference(const Json& part, const std::string& where) {
  const Json* source = member(part, "source");
  if (!source || !source->is_object()) fail(ErrorKind::kInvalidRequest, "{}.source must be an object", where);
  const std::string type = required_string(*source, "type", where + ".source");
  if (type == "url") return required_string(*source, "url", where + ".source");
  if (type == "base64") {
    const std::string media_type = required_string(*source, "media_type", where + ".source");
    return "data:" + media_type + ";base64," + required_string(*source, "data", where + ".source");
  }
  fail(ErrorKind::kInvalidRequest, "{}.source.type must be \"base64\" or \"url\", got \"{}\"", where, type);
}

// One content part as the template sees it; image parts also append to `images`.
Json convert_part(const Json& part, size_t message, const std::string& where, std::vector<ImageRef>& images) {
  if (!part.is_object()) fail(ErrorKind::kInvalidRequest, "{} must be an object", where);
  const std::string type = required_string(part, "type", where);
  if (type == "text") {
    required_string(part, "text", where);
    return part;
  }
  if (type == "image_url") {
    const Json* value = member(part, "image_url");
    std::string url;
    if (value && value->is_string()) {
      url = value->get<std::string>();
    } else if (value && value->is_object()) {
      url = required_string(*value, "url", where + ".image_url");
    } else {
      fail(ErrorKind::kInvalidRequest, "{}.image_url must be an object with a url", where);
    }
    images.push_back({url, message});
    return Json{{"type", "image"}, {"url", std::move(url)}};
  }
  if (type == "image") {
    if (member(part, "source")) {
      images.push_back({anthropic_reference(part, where), message});
      return Json{{"type", "image"}};
    }
    for (const char* key : {"url", "image", "path", "base64"}) {
      if (const Json* value = member(part, key); value && value->is_string()) {
        images.push_back({value->get<std::string>(), message});
        return part;
      }
    }
    fail(ErrorKind::kInvalidRequest, "{}: an image part needs a source, url, image, path or base64 field", where);
  }
  fail(ErrorKind::kInvalidRequest, "{}.type \"{}\" is not supported (text, image_url, image)", where, type);
}

bool known_role(std::string_view role) {
  return role == "system" || role == "developer" || role == "user" || role == "assistant" || role == "tool";
}

}  // namespace

ChatRequest parse_chat_request(const Json& body) {
  if (!body.is_object()) fail(ErrorKind::kInvalidRequest, "the request body must be a JSON object");
  ChatRequest request;
  const Json* messages = member(body, "messages");
  if (!messages || !messages->is_array() || messages->empty()) {
    fail(ErrorKind::kInvalidRequest, "messages must be a non-empty array");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& message = (*messages)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!message.is_object()) fail(ErrorKind::kInvalidRequest, "{} must be an object", where);
    const std::string role = required_string(message, "role", where);
    if (!known_role(role)) {
      fail(ErrorKind::kInvalidRequest, "{}.role \"{}\" is not one of system, developer, user, assistant, tool", where,
           role);
    }
    Json converted = message;
    const Json* content = member(message, "content");
    if (content && content->is_array()) {
      Json parts = Json::array();
      for (size_t j = 0; j < content->size(); ++j) {
        parts.push_back(convert_part((*content)[j], i, fmt::format("{}.content[{}]", where, j), request.images));
      }
      converted["content"] = std::move(parts);
    } else if (content && !content->is_string() && !content->is_null()) {
      fail(ErrorKind::kInvalidRequest, "{}.content must be a string, an array of parts or null", where);
    }
    request.messages.push_back(std::move(converted));
  }
  if (const Json* tools = member(body, "tools"); tools && !tools->is_null()) {
    if (!tools->is_array()) fail(ErrorKind::kInvalidRequest, "tools must be an array");
    if (!tools->empty()) request.tools = *tools;
  }
  if (const Json* kwargs = member(body, "chat_template_kwargs"); kwargs && !kwargs->is_null()) {
    if (!kwargs->is_object()) fail(ErrorKind::kInvalidRequest, "chat_template_kwargs must be an object");
    request.template_kwargs = *kwargs;
  }
  if (const Json* value = member(body, "add_generation_prompt"); value && !value->is_null()) {
    if (!value->is_boolean()) fail(ErrorKind::kInvalidRequest, "add_generation_prompt must be a boolean");
    request.add_generation_prompt = value->get<bool>();
  }
  if (const Json* value = member(body, "image_max_tokens"); value && !value->is_null()) {
    const auto tokens = value->is_number_integer() ? value->get<int64_t>() : int64_t{-1};
    if (tokens < 1 || tokens > 1'000'000)
      fail(ErrorKind::kInvalidRequest, "image_max_tokens must be a positive integer");
    request.image_max_tokens = static_cast<int>(tokens);
  }
  if (const Json* value = member(body, "pan_and_scan"); value && !value->is_null()) {
    if (!value->is_boolean()) fail(ErrorKind::kInvalidRequest, "pan_and_scan must be a boolean");
    request.pan_and_scan = value->get<bool>();
  }
  return request;
}

}  // namespace loom::prompt
