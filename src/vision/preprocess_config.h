#pragma once
// Reading preprocessor_config.json fields the way transformers does: a missing or null field means "use the
// processor's default". Wrong types are load-time errors naming the field.

#include <nlohmann/json.hpp>
#include <string>

#include "vision/resize.h"

namespace loom::vision {

// The image-processor part of a config: the object itself, or its "image_processor" member when the file is a
// combined processor_config.json.
const nlohmann::json& image_processor_section(const nlohmann::json& config);

bool config_bool(const nlohmann::json& config, const char* field, bool fallback);
double config_number(const nlohmann::json& config, const char* field, double fallback);
int64_t config_int(const nlohmann::json& config, const char* field, int64_t fallback);
ResampleFilter config_resample(const nlohmann::json& config, ResampleFilter fallback);

}  // namespace loom::vision
