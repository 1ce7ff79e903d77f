#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

Json null_or(const std::string& text) {
  return text.empty() ? Json(nullptr) : Json(text);
}

std::string dump(const Json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

ApiError api_error(const Error& error) {
  ApiError out;
  out.message = error.what();
  if (const auto* param_error = dynamic_cast<const ParamError*>(&error)) out.param = param_error->param();
  switch (error.kind()) {
    case ErrorKind::kInvalidRequest:
      out.status = 400;
      out.type = "invalid_request_error";
      break;
    case ErrorKind::kNotFound:
      // OpenAI reports a missing model as invalid_request_error / model_not_found.
      out.status = 404;
      out.type = "invalid_request_error";
      out.code = out.param == "model" ? "model_not_found" : "not_found";
      break;
    case ErrorKind::kContextLength:
      out.status = 400;
      out.type = "invalid_request_error";
      out.code = "context_length_exceeded";
      if (out.param.empty()) out.param = "messages";
      break;
    case ErrorKind::kUnsupported:
      out.status = 400;
      out.type = "invalid_request_error";
      out.code = "unsupported";
      break;
    case ErrorKind::kOverloaded:
      out.status = 429;
      out.type = "rate_limit_error";
      out.code = "rate_limit_exceeded";
      break;
    case ErrorKind::kInvalidFile:
    case ErrorKind::kInternal:
      out.status = 500;
      out.type = "server_error";
      break;
  }
  return out;
}

ApiError api_error(int status, std::string message) {
  ApiError out;
  out.status = status;
  out.message = std::move(message);
  switch (status) {
    case 401:
      out.type = "authentication_error";
      out.code = "invalid_api_key";
      break;
    case 403:
      out.type = "permission_error";
      break;
    case 404:
      out.type = "not_found_error";
      out.code = "not_found";
      break;
    case 408:
      out.type = "timeout_error";
      out.code = "request_timeout";
      break;
    case 413:
      out.type = "invalid_request_error";
      out.code = "request_too_large";
      break;
    case 429:
      out.type = "rate_limit_error";
      out.code = "rate_limit_exceeded";
      break;
    case 503:
      out.type = "server_error";
      out.code = "service_unavailable";
      break;
    case 507:
      out.type = "server_error";
      out.code = "insufficient_storage";
      break;
    default:
      out.type = status < 500 ? "invalid_request_error" : "server_error";
  }
  return out;
}

std::string openai_error_body(const ApiError& error) {
  Json body = {{"error",
                {{"message", error.message},
                 {"type", error.type},
                 {"param", null_or(error.param)},
                 {"code", null_or(error.code)}}}};
  return dump(body);
}

std::string anthropic_error_type(int status) {
  switch (status) {
    case 400:
    case 422:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return status < 500 ? "invalid_request_error" : "api_error";
  }
}

std::string anthropic_error_body(const ApiError& error) {
  Json body = {{"type", "error"},
               {"error", {{"type", anthropic_error_type(error.status)}, {"message", error.message}}}};
  return dump(body);
}

}  // namespace loom::server
