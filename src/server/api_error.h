#pragma once
// How a failed request is reported: loom::ErrorKind → HTTP status, the OpenAI error envelope
// {"error": {"message", "type", "param", "code"}} and the Anthropic one {"type": "error", "error": {"type",
// "message"}}.

#include <string>

#include "core/error.h"

namespace loom::server {

// A request field failed validation: a loom::Error that also names the request parameter (OpenAI's `param`).
class ParamError : public Error {
 public:
  ParamError(ErrorKind kind, std::string param, const std::string& message)
      : Error(kind, message), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

// Throws ParamError(kInvalidRequest) for `param`.
template <typename... Args>
[[noreturn]] void fail_param(const std::string& param, fmt::format_string<Args...> format, Args&&... args) {
  throw ParamError(ErrorKind::kInvalidRequest, param, fmt::format(format, std::forward<Args>(args)...));
}

struct ApiError {
  int status = 500;
  std::string type;  // OpenAI `type`: invalid_request_error, authentication_error, not_found_error, ...
  std::string message;
  std::string param;  // empty: null
  std::string code;   // empty: null
};

// InvalidRequest → 400 invalid_request_error; NotFound → 404 not_found_error; ContextLength → 400 with code
// context_length_exceeded; Unsupported → 400 (code unsupported); Overloaded → 429 rate_limit_error; InvalidFile and
// Internal → 500 server_error. A ParamError also fills `param`.
ApiError api_error(const Error& error);
// A bare status with a message (401, 404 route, 413, 503 ...): type and code follow the status.
ApiError api_error(int status, std::string message);

std::string openai_error_body(const ApiError& error);
// Anthropic's type for the status: invalid_request_error, authentication_error, permission_error, not_found_error,
// request_too_large, rate_limit_error, api_error, overloaded_error.
std::string anthropic_error_type(int status);
std::string anthropic_error_body(const ApiError& error);

}  // namespace loom::server
