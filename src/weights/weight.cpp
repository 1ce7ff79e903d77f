#include "weights/weight.h"

#include <fmt/format.h>

namespace loom::weights {

std::string quant_spec_name(const QuantSpec& spec) {
  switch (spec.mode) {
    case QuantMode::kNone:
      return "float";
    case QuantMode::kAffine:
      return fmt::format("affine-{}/g{}", spec.bits, spec.group_size);
    case QuantMode::kMxfp4:
      return "mxfp4";
    case QuantMode::kMxfp8:
      return "mxfp8";
    case QuantMode::kNvfp4:
      return "nvfp4";
  }
  return "unknown";
}

}  // namespace loom::weights
