#pragma once
// Logging goes through spdlog to stderr so stdout stays clean for command output (ids, JSON). One logger for the
// process; rooms call the free functions below instead of holding their own.

#include <spdlog/spdlog.h>

namespace loom::log {

// Sets the level from a name ("trace", "debug", "info", "warn", "error", "off"); unknown names keep "info".
void set_level(std::string_view level);

template <typename... Args>
void info(spdlog::format_string_t<Args...> format, Args&&... args) {
  spdlog::info(format, std::forward<Args>(args)...);
}
template <typename... Args>
void warn(spdlog::format_string_t<Args...> format, Args&&... args) {
  spdlog::warn(format, std::forward<Args>(args)...);
}
template <typename... Args>
void error(spdlog::format_string_t<Args...> format, Args&&... args) {
  spdlog::error(format, std::forward<Args>(args)...);
}
template <typename... Args>
void debug(spdlog::format_string_t<Args...> format, Args&&... args) {
  spdlog::debug(format, std::forward<Args>(args)...);
}

}  // namespace loom::log
