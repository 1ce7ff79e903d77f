#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace loom::log {

void set_level(std::string_view level) {
  static const bool installed = [] {
    spdlog::set_default_logger(spdlog::stderr_color_mt("loom"));
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    return true;
  }();
  (void)installed;
  const auto parsed = spdlog::level::from_str(std::string(level));
  spdlog::set_level(parsed == spdlog::level::off && level != "off" ? spdlog::level::info : parsed);
}

}  // namespace loom::log
