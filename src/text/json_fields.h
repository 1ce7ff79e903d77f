#pragma once
// Typed access to fields of tokenizer.json objects with errors that name the file and field.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"

namespace loom::text {

inline const nlohmann::json& field(const nlohmann::json& object, const char* name, std::string_view what) {
  if (!object.is_object()) fail(ErrorKind::kInvalidFile, "{}: expected an object", what);
  const auto it = object.find(name);
  if (it == object.end()) fail(ErrorKind::kInvalidFile, "{}: missing field \"{}\"", what, name);
  return *it;
}

inline std::string string_field(const nlohmann::json& object, const char* name, std::string_view what) {
  const auto& v = field(object, name, what);
  if (!v.is_string()) fail(ErrorKind::kInvalidFile, "{}: field \"{}\" must be a string", what, name);
  return v.get<std::string>();
}

inline std::string string_or(const nlohmann::json& object, const char* name, const std::string& fallback,
                             std::string_view what) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_string()) fail(ErrorKind::kInvalidFile, "{}: field \"{}\" must be a string", what, name);
  return it->get<std::string>();
}

inline bool bool_or(const nlohmann::json& object, const char* name, bool fallback, std::string_view what) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(ErrorKind::kInvalidFile, "{}: field \"{}\" must be true or false", what, name);
  return it->get<bool>();
}

inline long long int_or(const nlohmann::json& object, const char* name, long long fallback, std::string_view what) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) fail(ErrorKind::kInvalidFile, "{}: field \"{}\" must be an integer", what, name);
  return it->get<long long>();
}

inline const nlohmann::json& array_field(const nlohmann::json& object, const char* name, std::string_view what) {
  const auto& v = field(object, name, what);
  if (!v.is_array()) fail(ErrorKind::kInvalidFile, "{}: field \"{}\" must be an array", what, name);
  return v;
}

// A {"String": s} or {"Regex": r} pattern: returns the regex source (escaped for String).
std::string pattern_regex(const nlohmann::json& pattern, std::string_view what);

}  // namespace loom::text
