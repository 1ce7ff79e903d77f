// Request bodies → generation parameters: defaults, every accepted spelling, and each refusal naming its field.

#include "server/generation_params.h"

#include <gtest/gtest.h>

#include "server/api_error.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

// The ParamError's field, or "<none>" when the body was accepted.
std::string refused_field(const Json& body, Api api = Api::kChat) {
  try {
    parse_generation_params(body, api);
  } catch (const ParamError& e) {
    return e.param();
  }
  return "<none>";
}

TEST(GenerationParams, DefaultsFollowOpenAi) {
  const auto params = parse_generation_params(Json::object(), Api::kChat);
  EXPECT_FLOAT_EQ(params.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(params.sampling.top_p, 1.0f);
  EXPECT_EQ(params.sampling.top_k, 0);
  EXPECT_FALSE(params.max_tokens.has_value());
  EXPECT_FALSE(params.stream);
  EXPECT_TRUE(params.stop.strings.empty());
  EXPECT_FALSE(params.sampling.seed.has_value());
}

TEST(GenerationParams, ReadsEveryField) {
  const Json body = {{"temperature", 0.5},
                     {"top_p", 0.9},
                     {"top_k", 40},
                     {"min_p", 0.05},
                     {"seed", -1},
                     {"stop", "END"},
                     {"presence_penalty", 1.5},
                     {"frequency_penalty", -0.5},
                     {"repetition_penalty", 1.1},
                     {"logit_bias", {{"17", -100}, {"3", 2.5}}},
                     {"logprobs", true},
                     {"top_logprobs", 5},
                     {"max_tokens", 100},
                     {"max_completion_tokens", 50},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}},
                     {"n", 1},
                     {"response_format", {{"type", "text"}}},
                     {"some_future_field", {1, 2, 3}}};
  const auto p = parse_generation_params(body, Api::kChat);
  EXPECT_FLOAT_EQ(p.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(p.sampling.top_p, 0.9f);
  EXPECT_EQ(p.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(p.sampling.min_p, 0.05f);
  EXPECT_EQ(p.sampling.seed, std::numeric_limits<uint64_t>::max());  // -1 as two's complement
  EXPECT_EQ(p.stop.strings, std::vector<std::string>{"END"});
  EXPECT_FLOAT_EQ(p.sampling.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(p.sampling.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(p.sampling.repetition_penalty, 1.1f);
  ASSERT_EQ(p.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(p.sampling.logit_bias[0], (std::pair<int32_t, float>{17, -100.0f}));
  EXPECT_EQ(p.sampling.logit_bias[1], (std::pair<int32_t, float>{3, 2.5f}));
  EXPECT_TRUE(p.sampling.logprobs);
  EXPECT_EQ(p.sampling.top_logprobs, 5);
  EXPECT_EQ(p.max_tokens, 50);  // max_completion_tokens wins
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
}

TEST(GenerationParams, RefusalsNameTheField) {
  EXPECT_EQ(refused_field({{"temperature", 2.5}}), "temperature");
  EXPECT_EQ(refused_field({{"temperature", "hot"}}), "temperature");
  EXPECT_EQ(refused_field({{"top_p", 0}}), "top_p");
  EXPECT_EQ(refused_field({{"top_p", 1.5}}), "top_p");
  EXPECT_EQ(refused_field({{"top_k", 1.5}}), "top_k");
  EXPECT_EQ(refused_field({{"min_p", -0.1}}), "min_p");
  EXPECT_EQ(refused_field({{"max_tokens", 0}}), "max_tokens");
  EXPECT_EQ(refused_field({{"max_tokens", "10"}}), "max_tokens");
  EXPECT_EQ(refused_field({{"max_completion_tokens", -3}}), "max_completion_tokens");
  EXPECT_EQ(refused_field({{"presence_penalty", 3}}), "presence_penalty");
  EXPECT_EQ(refused_field({{"frequency_penalty", -2.5}}), "frequency_penalty");
  EXPECT_EQ(refused_field({{"repetition_penalty", 0}}), "repetition_penalty");
  EXPECT_EQ(refused_field({{"stop", 5}}), "stop");
  EXPECT_EQ(refused_field({{"stop", {"a", "b", "c", "d", "e"}}}), "stop");
  EXPECT_EQ(refused_field({{"stop", {"a", 1}}}), "stop");
  EXPECT_EQ(refused_field({{"logit_bias", {{"abc", 1}}}}), "logit_bias");
  EXPECT_EQ(refused_field({{"logit_bias", {{"5", 101}}}}), "logit_bias");
  EXPECT_EQ(refused_field({{"logit_bias", {1, 2}}}), "logit_bias");
  EXPECT_EQ(refused_field({{"top_logprobs", 3}}), "top_logprobs");  // without logprobs
  EXPECT_EQ(refused_field({{"logprobs", true}, {"top_logprobs", 21}}), "top_logprobs");
  EXPECT_EQ(refused_field({{"logprobs", "yes"}}), "logprobs");
  EXPECT_EQ(refused_field({{"stream", 1}}), "stream");
  EXPECT_EQ(refused_field({{"stream_options", {{"include_usage", true}}}}), "stream_options");
  EXPECT_EQ(refused_field({{"n", 2}}), "n");
  EXPECT_EQ(refused_field({{"n", 0}}), "n");
  EXPECT_EQ(refused_field({{"response_format", {{"type", "json_object"}}}}), "response_format");
  EXPECT_EQ(refused_field({{"response_format", {{"type", "json_schema"}}}}), "response_format");
  EXPECT_EQ(refused_field({{"seed", 1.5}}), "seed");
  EXPECT_EQ(refused_field({{"n", 1}, {"temperature", 0}}), "<none>");
  EXPECT_EQ(refused_field({{"max_tokens", 5.0}}), "<none>");  // an integral float is an integer
}

TEST(GenerationParams, UnsupportedOptionsAreUnsupportedNotInvalid) {
  try {
    parse_generation_params({{"n", 3}}, Api::kChat);
    FAIL() << "n = 3 accepted";
  } catch (const ParamError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_EQ(api_error(e).status, 400);
  }
}

TEST(GenerationParams, CompletionsLogprobsIsACount) {
  const auto p = parse_generation_params({{"logprobs", 3}, {"echo", true}}, Api::kCompletions);
  EXPECT_TRUE(p.sampling.logprobs);
  EXPECT_EQ(p.sampling.top_logprobs, 3);
  EXPECT_TRUE(p.echo);
  EXPECT_EQ(refused_field({{"logprobs", 6}}, Api::kCompletions), "logprobs");
  EXPECT_EQ(refused_field({{"best_of", 2}}, Api::kCompletions), "best_of");
}

TEST(GenerationParams, AnthropicFields) {
  const auto p = parse_generation_params(
      {{"max_tokens", 64}, {"stop_sequences", {"\n\nHuman:"}}, {"temperature", 1.0}, {"top_k", 5}}, Api::kMessages);
  EXPECT_EQ(p.max_tokens, 64);
  EXPECT_EQ(p.stop.strings, std::vector<std::string>{"\n\nHuman:"});
  EXPECT_EQ(p.sampling.top_k, 5);
  EXPECT_EQ(refused_field(Json::object(), Api::kMessages), "max_tokens");
  EXPECT_EQ(refused_field({{"max_tokens", 5}, {"temperature", 1.5}}, Api::kMessages), "temperature");
  // Anthropic takes a list only; a lone string (OpenAI's `stop` form) is refused, naming the field.
  EXPECT_EQ(refused_field({{"max_tokens", 5}, {"stop_sequences", "x"}}, Api::kMessages), "stop_sequences");
  EXPECT_EQ(refused_field({{"max_tokens", 5}, {"stop_sequences", {"x"}}}, Api::kMessages), "<none>");
}

TEST(GenerationParams, BudgetIsCappedByTheCapAndTheContext) {
  GenerationParams params;
  EXPECT_EQ(effective_max_tokens(params, 100, 2048, 4096), 1948);  // nothing asked: what the context leaves
  EXPECT_EQ(effective_max_tokens(params, 100, 8192, 4096), 4096);  // ... up to the cap
  params.max_tokens = 10;
  EXPECT_EQ(effective_max_tokens(params, 100, 2048, 4096), 10);
  params.max_tokens = 5000;
  EXPECT_EQ(effective_max_tokens(params, 100, 2048, 4096), 1948);
}

TEST(GenerationParams, ModelIsRequired) {
  EXPECT_THROW(requested_model(Json::object()), ParamError);
  EXPECT_THROW(requested_model({{"model", ""}}), ParamError);
  EXPECT_THROW(requested_model({{"model", 3}}), ParamError);
  EXPECT_EQ(requested_model({{"model", "m"}}), "m");
}

}  // namespace
}  // namespace loom::server
