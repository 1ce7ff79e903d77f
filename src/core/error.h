#pragma once
// The one exception type loom throws across room boundaries. The kind decides how a boundary reports it: the server
// maps kinds to HTTP status codes and API envelopes, the CLI prints the message and exits non-zero.

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace loom {

enum class ErrorKind {
  kInvalidRequest,  // the caller sent something malformed (400)
  kNotFound,        // a named thing does not exist (404)
  kContextLength,   // the prompt does not fit the context (400 context_length_exceeded)
  kUnsupported,     // well-formed, but loom does not implement it (400 / CLI error)
  kOverloaded,      // queue full or out of capacity (429 / 503)
  kInvalidFile,     // a file on disk is malformed: names the file and the expectation
  kInternal,        // a bug: an invariant did not hold (500)
};

std::string_view error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws Error(kind, fmt::format(...)): keeps call sites to one line.
template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace loom
