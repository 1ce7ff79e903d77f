#include "core/error.h"

namespace loom {

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidRequest:
      return "invalid_request";
    case ErrorKind::kNotFound:
      return "not_found";
    case ErrorKind::kContextLength:
      return "context_length_exceeded";
    case ErrorKind::kUnsupported:
      return "unsupported";
    case ErrorKind::kOverloaded:
      return "overloaded";
    case ErrorKind::kInvalidFile:
      return "invalid_file";
    case ErrorKind::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace loom
