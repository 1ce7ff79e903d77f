// Error kinds → HTTP status and both envelopes, field by field as the OpenAI and Anthropic APIs write them.

#include "server/api_error.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace loom::server {
namespace {

using Json = nlohmann::json;

TEST(ApiError, KindsMapToStatusTypeAndCode) {
  struct Case {
    ErrorKind kind;
    int status;
    const char* type;
    const char* code;  // nullptr: null
  };
  const Case cases[] = {
      {ErrorKind::kInvalidRequest, 400, "invalid_request_error", nullptr},
      {ErrorKind::kNotFound, 404, "invalid_request_error", "not_found"},
      {ErrorKind::kContextLength, 400, "invalid_request_error", "context_length_exceeded"},
      {ErrorKind::kUnsupported, 400, "invalid_request_error", "unsupported"},
      {ErrorKind::kOverloaded, 429, "rate_limit_error", "rate_limit_exceeded"},
      {ErrorKind::kInvalidFile, 500, "server_error", nullptr},
      {ErrorKind::kInternal, 500, "server_error", nullptr},
  };
  for (const auto& c : cases) {
    const auto error = api_error(Error(c.kind, "boom"));
    EXPECT_EQ(error.status, c.status) << error_kind_name(c.kind);
    const auto body = Json::parse(openai_error_body(error));
    ASSERT_EQ(body.size(), 1u);
    const auto& e = body["error"];
    EXPECT_EQ(e["message"], "boom");
    EXPECT_EQ(e["type"], c.type);
    if (c.code) {
      EXPECT_EQ(e["code"], c.code);
    } else {
      EXPECT_TRUE(e["code"].is_null());
    }
    EXPECT_TRUE(e.contains("param"));
  }
}

TEST(ApiError, ParamErrorsFillParam) {
  const auto error = api_error(ParamError(ErrorKind::kInvalidRequest, "temperature", "too hot"));
  EXPECT_EQ(Json::parse(openai_error_body(error))["error"]["param"], "temperature");
  const auto missing_model = api_error(ParamError(ErrorKind::kNotFound, "model", "no such model"));
  EXPECT_EQ(missing_model.status, 404);
  EXPECT_EQ(missing_model.code, "model_not_found");
}

TEST(ApiError, StatusOnlyErrors) {
  EXPECT_EQ(api_error(401, "x").type, "authentication_error");
  EXPECT_EQ(api_error(401, "x").code, "invalid_api_key");
  EXPECT_EQ(api_error(413, "x").code, "request_too_large");
  EXPECT_EQ(api_error(503, "x").type, "server_error");
}

TEST(ApiError, AnthropicEnvelope) {
  const auto body = Json::parse(anthropic_error_body(api_error(401, "bad key")));
  EXPECT_EQ(body, Json::parse(R"({"type":"error","error":{"type":"authentication_error","message":"bad key"}})"));
  EXPECT_EQ(anthropic_error_type(400), "invalid_request_error");
  EXPECT_EQ(anthropic_error_type(404), "not_found_error");
  EXPECT_EQ(anthropic_error_type(413), "request_too_large");
  EXPECT_EQ(anthropic_error_type(429), "rate_limit_error");
  EXPECT_EQ(anthropic_error_type(500), "api_error");
  EXPECT_EQ(anthropic_error_type(503), "overloaded_error");
}

}  // namespace
}  // namespace loom::server
