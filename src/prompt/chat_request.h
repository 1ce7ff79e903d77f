#pragma once
// A chat request as the API receives it (OpenAI chat-completions `messages`, `tools`, plus loom's image options),
// turned into what a chat template sees. transformers' processor.apply_chat_template is the reference: message
// objects are passed through unchanged except that an OpenAI part {"type": "image_url", "image_url": {"url": U}}
// becomes {"type": "image", "url": U}; content strings stay strings. Images are numbered in order of appearance
// across all messages, which is the order the processor pairs them with the placeholders.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace loom::prompt {

struct ImageRef {
  std::string reference;  // a data URL, raw base64, a path or an http(s) URL (vision::resolve_media reads it)
  size_t message = 0;     // index of the message that holds it
};

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // as the template sees them
  nlohmann::ordered_json tools;                                       // null when the request has none
  bool add_generation_prompt = true;
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();  // chat_template_kwargs
  std::vector<ImageRef> images;                                               // request order
  std::optional<int> image_max_tokens;  // Gemma 4 soft-token budget per image (70, 140, 280, 560, 1120)
  bool pan_and_scan = false;            // Gemma 3 crops
};

// Reads the request body. Throws Error(kInvalidRequest) naming the offending field (`messages[2].content[1]`).
// Accepted content parts: text, image_url (string or {url}), and Anthropic-style image {source: {type: base64,
// media_type, data} | {type: url, url}}; unknown part types are refused.
ChatRequest parse_chat_request(const nlohmann::ordered_json& body);

}  // namespace loom::prompt
