#include "vision/preprocess_config.h"

#include "core/error.h"

namespace loom::vision {
namespace {

bool present(const nlohmann::json& config, const char* field) {
  return config.is_object() && config.contains(field) && !config[field].is_null();
}

}  // namespace

const nlohmann::json& image_processor_section(const nlohmann::json& config) {
  if (config.is_object() && config.contains("image_processor") && config["image_processor"].is_object()) {
    return config["image_processor"];
  }
  return config;
}

bool config_bool(const nlohmann::json& config, const char* field, bool fallback) {
  if (!present(config, field)) return fallback;
  if (!config[field].is_boolean())
    fail(ErrorKind::kInvalidFile, "preprocessor config field '{}' must be a boolean", field);
  return config[field].get<bool>();
}

double config_number(const nlohmann::json& config, const char* field, double fallback) {
  if (!present(config, field)) return fallback;
  if (!config[field].is_number())
    fail(ErrorKind::kInvalidFile, "preprocessor config field '{}' must be a number", field);
  return config[field].get<double>();
}

int64_t config_int(const nlohmann::json& config, const char* field, int64_t fallback) {
  if (!present(config, field)) return fallback;
  if (!config[field].is_number_integer()) {
    fail(ErrorKind::kInvalidFile, "preprocessor config field '{}' must be an integer", field);
  }
  return config[field].get<int64_t>();
}

ResampleFilter config_resample(const nlohmann::json& config, ResampleFilter fallback) {
  if (!present(config, "resample")) return fallback;
  return resample_filter_from_pil(static_cast<int>(config_int(config, "resample", 0)));
}

}  // namespace loom::vision
