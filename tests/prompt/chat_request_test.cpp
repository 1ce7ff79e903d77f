// Request parsing: what the template sees matches what transformers' processor passes (image_url parts become
// {"type": "image", "url"}), images numbered in order of appearance, errors naming the field.

#include "prompt/chat_request.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace loom::prompt {
namespace {

using Json = nlohmann::ordered_json;

TEST(ChatRequest, ConvertsPartsLikeTheProcessor) {
  const Json body = Json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "image_url", "image_url": {"url": "x.png"}}]},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function",
        "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "1", "content": "ok"},
      {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
        "data": "AAAA"}}, {"type": "image_url", "image_url": "y.png"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "image_max_tokens": 560, "pan_and_scan": true, "add_generation_prompt": false
  })");
  const auto request = parse_chat_request(body);
  EXPECT_EQ(request.messages[0], body["messages"][0]);
  EXPECT_EQ(request.messages[1]["content"][1], Json::parse(R"({"type": "image", "url": "x.png"})"));
  EXPECT_EQ(request.messages[2], body["messages"][2]);
  EXPECT_EQ(request.messages[4]["content"][0], Json::parse(R"({"type": "image"})"));
  ASSERT_EQ(request.images.size(), 3u);
  EXPECT_EQ(request.images[0].reference, "x.png");
  EXPECT_EQ(request.images[0].message, 1u);
  EXPECT_EQ(request.images[1].reference, "data:image/png;base64,AAAA");
  EXPECT_EQ(request.images[2].reference, "y.png");
  EXPECT_EQ(request.images[2].message, 4u);
  EXPECT_EQ(request.tools, body["tools"]);
  EXPECT_EQ(request.image_max_tokens, 560);
  EXPECT_TRUE(request.pan_and_scan);
  EXPECT_FALSE(request.add_generation_prompt);
}

TEST(ChatRequest, ErrorsNameTheField) {
  const auto message_of = [](const char* json) {
    try {
      parse_chat_request(Json::parse(json));
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of(R"({"messages": []})").find("messages"), std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "robot", "content": "x"}]})").find("messages[0].role"),
            std::string::npos);
  EXPECT_NE(
      message_of(R"({"messages": [{"role": "user", "content": [{"type": "audio"}]}]})").find("messages[0].content[0]"),
      std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})").find("image_url"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "user", "content": 3}]})").find("content"), std::string::npos);
  EXPECT_NE(message_of(R"({"messages": [{"role": "user", "content": "x"}], "image_max_tokens": -4})")
                .find("image_max_tokens"),
            std::string::npos);
}

}  // namespace
}  // namespace loom::prompt
