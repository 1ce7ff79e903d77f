#include "weights/quantize_policy.h"

#include <fmt/format.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "weights/quant_config.h"
#include "weights/tensor_names.h"

namespace loom::weights {
namespace {

// Module names under which mlx-vlm leaves every layer in float, whichever naming the checkpoint uses.
constexpr std::string_view kFloatSubmodels[] = {"vision_tower",          "vision_model", "visual",
                                                "multi_modal_projector", "audio_tower",  "audio_model"};

std::vector<std::string_view> components(std::string_view name) {
  std::vector<std::string_view> out;
  size_t begin = 0;
  while (begin <= name.size()) {
    const size_t dot = name.find('.', begin);
    const size_t end = dot == std::string_view::npos ? name.size() : dot;
    out.push_back(name.substr(begin, end - begin));
    if (dot == std::string_view::npos) break;
    begin = dot + 1;
  }
  return out;
}

}  // namespace

bool is_quantizable_weight(std::string_view name, const Shape& shape, int group_size) {
  if (shape.size() != 2 || group_size <= 0) return false;
  const std::string canonical = canonical_tensor_name(name);
  const std::vector<std::string_view> parts = components(canonical);
  // A parameter called `weight` of some module: raw parameters such as Gemma 3's
  // `multi_modal_projector.mm_input_projection_weight` are not Linear layers and stay float.
  if (parts.size() < 2 || parts.back() != "weight") return false;
  if (parts[parts.size() - 2].find("norm") != std::string_view::npos) return false;
  for (std::string_view part : parts) {
    for (std::string_view tower : kFloatSubmodels) {
      if (part == tower) return false;
    }
  }
  return shape[1] > 0 && shape[1] % group_size == 0;
}

QuantSpec resolve_quant_spec(std::string_view mode, std::optional<int> bits, std::optional<int> group_size) {
  const std::optional<QuantMode> parsed = quant_mode_from_name(mode);
  if (!parsed) fail(ErrorKind::kInvalidRequest, "--mode '{}' is not one of affine, mxfp4, mxfp8, nvfp4", mode);
  QuantSpec spec{.mode = *parsed};
  switch (spec.mode) {
    case QuantMode::kAffine:
      spec.bits = bits.value_or(4);
      spec.group_size = group_size.value_or(64);
      if (spec.bits != 2 && spec.bits != 3 && spec.bits != 4 && spec.bits != 5 && spec.bits != 6 && spec.bits != 8) {
        fail(ErrorKind::kInvalidRequest, "--bits {} is not valid for affine: use 2, 3, 4, 5, 6 or 8", spec.bits);
      }
      if (spec.group_size != 32 && spec.group_size != 64 && spec.group_size != 128) {
        fail(ErrorKind::kInvalidRequest, "--group-size {} is not valid for affine: use 32, 64 or 128", spec.group_size);
      }
      return spec;
    case QuantMode::kMxfp4:
    case QuantMode::kMxfp8:
    case QuantMode::kNvfp4: {
      const int fixed_bits = spec.mode == QuantMode::kMxfp8 ? 8 : 4;
      const int fixed_group = spec.mode == QuantMode::kNvfp4 ? 16 : 32;
      spec.bits = bits.value_or(fixed_bits);
      spec.group_size = group_size.value_or(fixed_group);
      if (spec.bits != fixed_bits) {
        fail(ErrorKind::kInvalidRequest, "--bits {} is not valid for {}: it is {}-bit only", spec.bits, mode,
             fixed_bits);
      }
      if (spec.group_size != fixed_group) {
        fail(ErrorKind::kInvalidRequest, "--group-size {} is not valid for {}: it uses groups of {} only",
             spec.group_size, mode, fixed_group);
      }
      return spec;
    }
    case QuantMode::kNone:
      break;
  }
  fail(ErrorKind::kInvalidRequest, "--mode '{}' is not a quantized mode", mode);
}

}  // namespace loom::weights
