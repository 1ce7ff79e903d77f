// The Anthropic request translation, stop_reason mapping, SSE framing and the Prometheus text.

#include <gtest/gtest.h>

#include "server/anthropic_translate.h"
#include "server/api_error.h"
#include "server/metrics.h"
#include "server/sse.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

TEST(AnthropicTranslate, SystemBecomesTheFirstMessageAndImagesPassThrough) {
  const Json body = {
      {"system", Json::array({{{"type", "text"}, {"text", "Be terse."}}, {{"type", "text"}, {"text", "Be kind."}}})},
      {"messages",
       Json::array(
           {{{"role", "user"},
             {"content", Json::array({{{"type", "image"},
                                       {"source", {{"type", "base64"}, {"media_type", "image/png"}, {"data", "AAAA"}}}},
                                      {{"type", "text"}, {"text", "What is this?"}}})}},
            {{"role", "assistant"}, {"content", "A square."}},
            {{"role", "user"}, {"content", "Sure?"}}})}};
  const Json expected = {
      {"messages",
       Json::array(
           {{{"role", "system"}, {"content", "Be terse.\nBe kind."}},
            {{"role", "user"},
             {"content", Json::array({{{"type", "image"},
                                       {"source", {{"type", "base64"}, {"media_type", "image/png"}, {"data", "AAAA"}}}},
                                      {{"type", "text"}, {"text", "What is this?"}}})}},
            {{"role", "assistant"}, {"content", "A square."}},
            {{"role", "user"}, {"content", "Sure?"}}})}};
  EXPECT_EQ(anthropic_to_chat(body), expected);
  EXPECT_EQ(anthropic_to_chat(
                {{"system", "S"}, {"messages", Json::array({{{"role", "user"}, {"content", "x"}}})}})["messages"][0],
            (Json{{"role", "system"}, {"content", "S"}}));
}

std::string refused(const Json& body) {
  try {
    anthropic_to_chat(body);
  } catch (const ParamError& e) {
    return e.param();
  }
  return "<none>";
}

TEST(AnthropicTranslate, RefusalsNameTheField) {
  EXPECT_EQ(refused(Json::object()), "messages");
  EXPECT_EQ(refused({{"messages", Json::array()}}), "messages");
  EXPECT_EQ(refused({{"messages", Json::array({{{"role", "system"}, {"content", "x"}}})}}), "messages[0].role");
  EXPECT_EQ(refused({{"messages", Json::array({{{"role", "user"}, {"content", 5}}})}}), "messages[0].content");
  EXPECT_EQ(
      refused({{"messages",
                Json::array({{{"role", "user"}, {"content", Json::array({{{"type", "tool_use"}, {"id", "t"}}})}}})}}),
      "messages[0].content[0]");
  EXPECT_EQ(
      refused({{"messages",
                Json::array({{{"role", "user"},
                              {"content", Json::array({{{"type", "image"}, {"source", {{"type", "file"}}}}})}}})}}),
      "messages[0].content[0]");
  EXPECT_EQ(refused({{"system", 5}, {"messages", Json::array({{{"role", "user"}, {"content", "x"}}})}}), "system");
}

TEST(AnthropicTranslate, StopReasons) {
  engine::StreamEvent finish;
  finish.kind = engine::StreamEvent::Kind::kFinish;
  finish.reason = engine::FinishReason::kLength;
  EXPECT_EQ(anthropic_stop_reason(finish).reason, "max_tokens");
  finish.reason = engine::FinishReason::kStop;
  finish.stop_token = 1;
  EXPECT_EQ(anthropic_stop_reason(finish).reason, "end_turn");
  finish.stop_token.reset();
  finish.stop_string = "END";
  EXPECT_EQ(anthropic_stop_reason(finish).reason, "stop_sequence");
  EXPECT_EQ(anthropic_stop_reason(finish).stop_sequence, "END");
}

TEST(Sse, Framing) {
  EXPECT_EQ(sse_data({{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_event("ping", {{"type", "ping"}}), "event: ping\ndata: {\"type\":\"ping\"}\n\n");
  // A newline in a value is escaped inside the JSON string, so it cannot end the event early.
  EXPECT_EQ(sse_data({{"t", "a\nb"}}), "data: {\"t\":\"a\\nb\"}\n\n");
  // Invalid UTF-8 (half a character) is replaced rather than failing the stream.
  EXPECT_EQ(sse_data({{"t", std::string("\xe2\x82")}}), "data: {\"t\":\"\xef\xbf\xbd\"}\n\n");
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
}

TEST(Metrics, HistogramIsCumulative) {
  Histogram histogram({0.1, 1.0});
  for (const double x : {0.05, 0.1, 0.5, 2.0, 3.0}) histogram.observe(x);
  const auto text = histogram.text("t", "help");
  // Buckets are "less or equal": 0.05 and 0.1 fall in le=0.1; 0.5 in le=1; 2 and 3 only in +Inf.
  EXPECT_NE(text.find("t_bucket{le=\"0.1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_bucket{le=\"1\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_bucket{le=\"+Inf\"} 5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_sum 5.65\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_count 5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE t histogram\n"), std::string::npos);
}

TEST(Metrics, TextHasCountersAndGauges) {
  Metrics metrics;
  metrics.count_request("/v1/chat/completions", 200);
  metrics.count_request("/v1/chat/completions", 200);
  metrics.count_request("/v1/chat/completions", 400);
  metrics.add_tokens(10, 3);
  engine::EngineStats stats;
  stats.queued = 2;
  stats.kv_blocks_used = 5;
  stats.kv_blocks_total = 64;
  const auto text = metrics.text({{"m\"1", stats}}, 3);
  EXPECT_NE(text.find("loom_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("loom_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("loom_prompt_tokens_total 10\n"), std::string::npos);
  EXPECT_NE(text.find("loom_generation_tokens_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("loom_queue_depth{model=\"m\\\"1\"} 2\n"), std::string::npos) << text;  // label escaped
  EXPECT_NE(text.find("loom_kv_blocks_used{model=\"m\\\"1\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("loom_kv_blocks_total{model=\"m\\\"1\"} 64\n"), std::string::npos);
  EXPECT_NE(text.find("loom_models_loaded 1\n"), std::string::npos);
  EXPECT_NE(text.find("loom_models_available 3\n"), std::string::npos);
}

}  // namespace
}  // namespace loom::server
