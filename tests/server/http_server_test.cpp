// The server end to end in-process: tiny_chat behind the HTTP layer on a free port, requests through httplib's
// client. Random weights make the text meaningless, so the tests check the API shapes and behaviour that do not
// depend on meaning: greedy runs repeat, streams and whole replies agree, stop strings cut where str.find says,
// usage matches /tokenize, budgets are honoured, errors come in the right envelope, and a client that goes away
// cancels its request.

#include <gtest/gtest.h>

#include <chrono>

#include "server_fixture.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;
using testing::parse_sse;
using testing::RunningServer;

class HttpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    RegistryOptions options;
    options.engine.kv_tokens = 4096;
    options.engine.max_queued = 64;
    registry_ = new ModelRegistry(
        {parse_model_argument(testing::tiny_chat_dir())}, [] { return std::make_unique<backend::cpu::CpuBackend>(); },
        options);
    registry_->acquire("tiny_chat");
    HttpOptions http;
    http.host = "127.0.0.1";
    http.port = 0;
    http.max_body_bytes = 256 << 10;
    http.threads = 8;
    server_ = new RunningServer(*registry_, http);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete registry_;
  }

  static Json post(const std::string& path, const Json& body, int expected_status = 200) {
    auto client = server_->client();
    auto result = client.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(result) << path;
    if (!result) return {};
    EXPECT_EQ(result->status, expected_status) << path << " " << result->body;
    return Json::parse(result->body);
  }
  static std::string post_raw(const std::string& path, const Json& body) {
    auto client = server_->client();
    auto result = client.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(result);
    if (!result) return {};
    EXPECT_EQ(result->status, 200) << result->body;
    return result->body;
  }
  static Json chat(std::string text, int max_tokens) {
    return {{"model", "tiny_chat"},
            {"messages", Json::array({{{"role", "user"}, {"content", std::move(text)}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0}};
  }

  static ModelRegistry* registry_;
  static RunningServer* server_;
};

ModelRegistry* HttpServerTest::registry_ = nullptr;
RunningServer* HttpServerTest::server_ = nullptr;

TEST_F(HttpServerTest, HealthAndModels) {
  auto client = server_->client();
  auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(Json::parse(health->body)["status"], "ok");

  auto models = client.Get("/v1/models");
  ASSERT_TRUE(models);
  const auto list = Json::parse(models->body);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], "tiny_chat");
  EXPECT_EQ(list["data"][0]["object"], "model");
  EXPECT_EQ(list["data"][0]["owned_by"], "loom");

  auto one = client.Get("/v1/models/tiny_chat");
  ASSERT_TRUE(one);
  EXPECT_EQ(Json::parse(one->body)["id"], "tiny_chat");
  auto status = client.Get("/v1/models/tiny_chat/status");
  ASSERT_TRUE(status);
  const auto s = Json::parse(status->body);
  EXPECT_EQ(s["state"], "loaded");
  EXPECT_EQ(s["architecture"], "Gemma3ForConditionalGeneration");
  EXPECT_EQ(s["vocab_size"], 360);

  auto missing = client.Get("/v1/models/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(Json::parse(missing->body)["error"]["code"], "model_not_found");
}

TEST_F(HttpServerTest, ChatCompletionShapeAndGreedyRepeat) {
  const auto first = post("/v1/chat/completions", chat("Say something.", 12));
  EXPECT_EQ(first["object"], "chat.completion");
  EXPECT_EQ(first["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(first["model"], "tiny_chat");
  EXPECT_TRUE(first["created"].is_number_integer());
  EXPECT_TRUE(first["system_fingerprint"].is_string());
  ASSERT_EQ(first["choices"].size(), 1u);
  const auto& choice = first["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_TRUE(choice["message"]["content"].is_string());
  EXPECT_TRUE(choice["logprobs"].is_null());
  const auto& usage = first["usage"];
  EXPECT_EQ(usage["total_tokens"], usage["prompt_tokens"].get<int>() + usage["completion_tokens"].get<int>());
  if (choice["finish_reason"] == "length") {
    EXPECT_EQ(usage["completion_tokens"], 12);
  }

  // prompt_tokens is what /tokenize counts for the same messages.
  const auto tokens = post("/tokenize", {{"model", "tiny_chat"}, {"messages", chat("Say something.", 1)["messages"]}});
  EXPECT_EQ(usage["prompt_tokens"], tokens["count"]);

  const auto second = post("/v1/chat/completions", chat("Say something.", 12));
  EXPECT_EQ(second["choices"][0]["message"]["content"], choice["message"]["content"]);
  EXPECT_NE(second["id"], first["id"]);
}

TEST_F(HttpServerTest, StreamMatchesWholeReplyAndEndsWithDone) {
  auto body = chat("Stream please.", 16);
  const auto whole = post("/v1/chat/completions", body);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto events = parse_sse(post_raw("/v1/chat/completions", body));
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back().data, "[DONE]");
  std::string text;
  std::string id;
  int finish_chunks = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const auto chunk = Json::parse(events[i].data);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (id.empty()) id = chunk["id"];
    EXPECT_EQ(chunk["id"], id);  // one id for the whole stream
    ASSERT_TRUE(chunk.contains("usage"));
    if (i + 2 == events.size()) {  // the usage chunk
      EXPECT_TRUE(chunk["choices"].empty());
      EXPECT_EQ(chunk["usage"], whole["usage"]);
      continue;
    }
    EXPECT_TRUE(chunk["usage"].is_null());
    const auto& choice = chunk["choices"][0];
    if (i == 0) {
      EXPECT_EQ(choice["delta"]["role"], "assistant");
    }
    if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (!choice["finish_reason"].is_null()) {
      ++finish_chunks;
      EXPECT_EQ(choice["finish_reason"], whole["choices"][0]["finish_reason"]);
    }
  }
  EXPECT_EQ(finish_chunks, 1);
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);
}

TEST_F(HttpServerTest, StopStringEndsTheTextWhereItFirstOccurs) {
  // Seeded sampling: the same body gives the same tokens, so the second run matches the first up to the stop.
  auto body = chat("Tell me more.", 24);
  body["temperature"] = 0.8;
  body["seed"] = 2;
  const auto first = post("/v1/chat/completions", body);
  const std::string text = first["choices"][0]["message"]["content"];
  ASSERT_GE(text.size(), 8u) << text;
  const std::string stop = text.substr(text.size() / 2, 2);
  body["stop"] = Json::array({stop});
  const auto stopped = post("/v1/chat/completions", body);
  EXPECT_EQ(stopped["choices"][0]["message"]["content"], text.substr(0, text.find(stop))) << text << " / " << stop;
  EXPECT_EQ(stopped["choices"][0]["finish_reason"], "stop");
  EXPECT_LT(stopped["usage"]["completion_tokens"].get<int>(), 24);
}

TEST_F(HttpServerTest, LogprobsHaveTheOpenAiShape) {
  auto body = chat("Hi", 4);
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  const auto reply = post("/v1/chat/completions", body);
  const auto& content = reply["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), static_cast<size_t>(reply["usage"]["completion_tokens"].get<int>()));
  std::string joined;
  for (const auto& entry : content) {
    EXPECT_TRUE(entry["token"].is_string());
    EXPECT_LE(entry["logprob"].get<double>(), 0.0);
    ASSERT_EQ(entry["top_logprobs"].size(), 3u);
    // Greedy: the sampled token is the most likely one.
    EXPECT_NEAR(entry["logprob"].get<double>(), entry["top_logprobs"][0]["logprob"].get<double>(), 1e-5);
    for (const auto& byte : entry["bytes"]) joined += static_cast<char>(byte.get<int>());
  }
  if (reply["choices"][0]["finish_reason"] == "length") {
    EXPECT_EQ(joined, reply["choices"][0]["message"]["content"]);
  }
}

TEST_F(HttpServerTest, CompletionsFromTextAndFromIds) {
  const Json body = {{"model", "tiny_chat"}, {"prompt", "Once upon"}, {"max_tokens", 6}, {"temperature", 0}};
  const auto reply = post("/v1/completions", body);
  EXPECT_EQ(reply["object"], "text_completion");
  EXPECT_EQ(reply["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_TRUE(reply["choices"][0]["text"].is_string());
  // "Once upon" is <bos> + one token per character (the tokenizer has no merges).
  EXPECT_EQ(reply["usage"]["prompt_tokens"], 1 + 9);

  const auto ids = post("/tokenize", {{"model", "tiny_chat"}, {"content", "Once upon"}});
  Json by_ids = body;
  by_ids["prompt"] = ids["tokens"];
  EXPECT_EQ(post("/v1/completions", by_ids)["choices"][0]["text"], reply["choices"][0]["text"]);
}

TEST_F(HttpServerTest, TokenizeMatchesTheVocabularyLayout) {
  // tiny_chat's vocabulary: <bos> is 2, "▁" is 265, '!'..'~' are 266..359, other bytes <0xNN> at 9 + NN.
  const auto reply = post("/tokenize", {{"model", "tiny_chat"}, {"content", "Hi there\n"}});
  const std::vector<int> expected = {2,
                                     266 + ('H' - '!'),
                                     266 + ('i' - '!'),
                                     265,
                                     266 + ('t' - '!'),
                                     266 + ('h' - '!'),
                                     266 + ('e' - '!'),
                                     266 + ('r' - '!'),
                                     266 + ('e' - '!'),
                                     9 + '\n'};
  EXPECT_EQ(reply["tokens"].get<std::vector<int>>(), expected);
  const auto back = post("/detokenize", {{"model", "tiny_chat"}, {"tokens", Json(expected).get<std::vector<int>>()}});
  EXPECT_EQ(back["prompt"], "<bos>Hi there\n");
}

TEST_F(HttpServerTest, AnthropicMessagesWholeAndStreamed) {
  Json body = {{"model", "tiny_chat"},
               {"max_tokens", 10},
               {"temperature", 0},
               {"system", "Be brief."},
               {"messages", Json::array({{{"role", "user"}, {"content", "Hello"}}})}};
  const auto whole = post("/v1/messages", body);
  EXPECT_EQ(whole["type"], "message");
  EXPECT_EQ(whole["role"], "assistant");
  EXPECT_EQ(whole["id"].get<std::string>().rfind("msg_", 0), 0u);
  EXPECT_EQ(whole["content"][0]["type"], "text");
  const std::string reason = whole["stop_reason"];
  EXPECT_TRUE(reason == "end_turn" || reason == "max_tokens") << reason;
  if (reason == "max_tokens") {
    EXPECT_EQ(whole["usage"]["output_tokens"], 10);
  }

  body["stream"] = true;
  const auto events = parse_sse(post_raw("/v1/messages", body));
  ASSERT_GE(events.size(), 6u);
  EXPECT_EQ(events.front().event, "message_start");
  EXPECT_EQ(events[1].event, "content_block_start");
  EXPECT_EQ(events.back().event, "message_stop");
  EXPECT_EQ(events[events.size() - 2].event, "message_delta");
  EXPECT_EQ(events[events.size() - 3].event, "content_block_stop");
  std::string text;
  for (const auto& event : events) {
    const auto data = Json::parse(event.data);
    EXPECT_EQ(data["type"], event.event);  // every event names its type twice
    if (event.event == "content_block_delta") text += data["delta"]["text"].get<std::string>();
  }
  EXPECT_EQ(text, whole["content"][0]["text"]);
  const auto delta = Json::parse(events[events.size() - 2].data);
  EXPECT_EQ(delta["delta"]["stop_reason"], reason);
  EXPECT_EQ(delta["usage"]["output_tokens"], whole["usage"]["output_tokens"]);
  EXPECT_EQ(Json::parse(events.front().data)["message"]["usage"]["input_tokens"], whole["usage"]["input_tokens"]);
}

TEST_F(HttpServerTest, BadInputsGetEnvelopesAndTheServerKeepsServing) {
  auto client = server_->client();
  const auto good = [&] { post("/v1/chat/completions", chat("ok", 2)); };

  auto malformed = client.Post("/v1/chat/completions", "{\"model\": ", "application/json");
  ASSERT_TRUE(malformed);
  EXPECT_EQ(malformed->status, 400);
  EXPECT_EQ(Json::parse(malformed->body)["error"]["type"], "invalid_request_error");
  good();

  auto unknown = chat("x", 2);
  unknown["model"] = "no-such-model";
  EXPECT_EQ(post("/v1/chat/completions", unknown, 404)["error"]["code"], "model_not_found");
  good();

  auto two = chat("x", 2);
  two["n"] = 2;
  EXPECT_EQ(post("/v1/chat/completions", two, 400)["error"]["param"], "n");
  good();

  auto json_mode = chat("x", 2);
  json_mode["response_format"] = {{"type", "json_object"}};
  EXPECT_EQ(post("/v1/chat/completions", json_mode, 400)["error"]["param"], "response_format");
  good();

  auto hot = chat("x", 2);
  hot["temperature"] = 3;
  EXPECT_EQ(post("/v1/chat/completions", hot, 400)["error"]["param"], "temperature");
  good();

  const std::string huge(300 << 10, 'a');  // over the 256 KiB cap of this server
  auto big = client.Post("/v1/chat/completions", huge, "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(Json::parse(big->body)["error"]["code"], "request_too_large");
  good();

  auto no_route = client.Get("/v2/nothing");
  ASSERT_TRUE(no_route);
  EXPECT_EQ(no_route->status, 404);
  EXPECT_TRUE(Json::parse(no_route->body).contains("error"));

  // Anthropic route: Anthropic's envelope.
  const auto anthropic = post(
      "/v1/messages", {{"model", "tiny_chat"}, {"messages", Json::array({{{"role", "user"}, {"content", "x"}}})}}, 400);
  EXPECT_EQ(anthropic["type"], "error");
  EXPECT_EQ(anthropic["error"]["type"], "invalid_request_error");
  good();
}

TEST_F(HttpServerTest, LongPromptIsContextLengthExceeded) {
  const auto reply = post("/v1/chat/completions", chat(std::string(3000, 'a'), 2), 400);
  EXPECT_EQ(reply["error"]["code"], "context_length_exceeded");
  const std::string message = reply["error"]["message"];
  EXPECT_NE(message.find("2048"), std::string::npos) << message;  // the context
  EXPECT_NE(message.find("30"), std::string::npos) << message;    // the prompt's count, 3000 and some
}

TEST_F(HttpServerTest, ApiKeyIsRequiredWhenSet) {
  HttpOptions options;
  options.port = 0;
  options.api_key = "sekret";
  options.threads = 4;
  RunningServer keyed(*registry_, options);
  const std::string body = chat("hi", 2).dump();

  auto none = keyed.client().Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(Json::parse(none->body)["error"]["code"], "invalid_api_key");
  auto wrong = keyed.client("nope").Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(Json::parse(wrong->body)["error"]["type"], "authentication_error");
  auto right = keyed.client("sekret").Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  auto x_api_key = keyed.client().Post(
      "/v1/messages", httplib::Headers{{"x-api-key", "sekret"}},
      Json{{"model", "tiny_chat"}, {"max_tokens", 2}, {"messages", Json::array({{{"role", "user"}, {"content", "x"}}})}}
          .dump(),
      "application/json");
  ASSERT_TRUE(x_api_key);
  EXPECT_EQ(x_api_key->status, 200);
  auto anthropic_wrong =
      keyed.client().Post("/v1/messages", httplib::Headers{{"x-api-key", "bad"}}, "{}", "application/json");
  ASSERT_TRUE(anthropic_wrong);
  EXPECT_EQ(Json::parse(anthropic_wrong->body)["error"]["type"], "authentication_error");
  auto health = keyed.client().Get("/health");  // open, for load balancers
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpServerTest, ClientThatDisconnectsCancelsItsStream) {
  const auto model = registry_->acquire("tiny_chat");
  const auto before = model->engine->stats();
  auto body = chat("Go on and on.", 1900);
  body["stream"] = true;
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/chat/completions";
  request.body = body.dump();
  request.set_header("Content-Type", "application/json");
  int pieces = 0;
  request.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++pieces < 3; };
  auto client = server_->client();
  client.send(request);  // fails by design: the receiver stops reading
  EXPECT_GE(pieces, 1);

  // The request finishes (cancelled) long before 1900 tokens, and its KV blocks come back.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  engine::EngineStats now;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    now = model->engine->stats();
  } while (now.requests_finished == before.requests_finished && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(now.requests_finished, before.requests_finished + 1);
  EXPECT_LT(now.generated_tokens - before.generated_tokens, 1900);
  EXPECT_EQ(now.running, 0);
  EXPECT_EQ(now.kv_blocks_used, 0);
}

TEST_F(HttpServerTest, MetricsCountRequestsAndTokens) {
  post("/v1/chat/completions", chat("count me", 3));
  auto client = server_->client();
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  const std::string& text = metrics->body;
  EXPECT_NE(text.find("loom_requests_total{route=\"/v1/chat/completions\",status=\"200\"}"), std::string::npos);
  EXPECT_NE(text.find("loom_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), std::string::npos);
  EXPECT_NE(text.find("loom_kv_blocks_total{model=\"tiny_chat\"}"), std::string::npos);
  EXPECT_NE(text.find("loom_models_loaded 1"), std::string::npos);
}

}  // namespace
}  // namespace loom::server
