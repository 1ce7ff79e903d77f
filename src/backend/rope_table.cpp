#include "backend/rope_table.h"

#include <cmath>

#include "core/error.h"

namespace loom::backend {
namespace {

// θ^(-2i/dim) evaluated in double and rounded once: the reference builds inv_freq in fp32 from the same expression.
float inverse_frequency(double theta, int i, int dim) {
  return static_cast<float>(1.0 / std::pow(theta, 2.0 * i / dim));
}

void add_pair(RopeTable& table, int first, int second, float inv_freq, int axis) {
  table.first.push_back(first);
  table.second.push_back(second);
  table.inv_freq.push_back(inv_freq);
  table.axis.push_back(static_cast<uint8_t>(axis));
}

}  // namespace

RopeTable make_rope_table(const RopeSpec& spec) {
  const int d = spec.head_dim;
  if (d <= 0 || d % 2 != 0) fail(ErrorKind::kUnsupported, "[rope] head_dim must be positive and even, got {}", d);
  if (!(spec.theta > 0)) fail(ErrorKind::kUnsupported, "[rope] theta must be positive, got {}", spec.theta);
  RopeTable table;
  table.head_dim = d;
  const int half = d / 2;
  switch (spec.kind) {
    case RopeKind::kDefault:
    case RopeKind::kLinear: {
      if (!(spec.factor > 0)) fail(ErrorKind::kUnsupported, "[rope] linear factor must be positive");
      const double divide = spec.kind == RopeKind::kLinear ? spec.factor : 1.0;
      for (int i = 0; i < half; ++i) {
        add_pair(table, i, i + half, static_cast<float>(1.0 / std::pow(spec.theta, 2.0 * i / d) / divide), 0);
      }
      break;
    }
    case RopeKind::kProportional: {
      if (!(spec.partial_rotary_factor > 0 && spec.partial_rotary_factor <= 1)) {
        fail(ErrorKind::kUnsupported, "[rope] partial_rotary_factor must be in (0, 1], got {}",
             spec.partial_rotary_factor);
      }
      if (!(spec.factor > 0)) fail(ErrorKind::kUnsupported, "[rope] proportional factor must be positive");
      // Rotated pairs: partial · d / 2 of them, with the exponent still over the full head_dim; every frequency is
      // divided by `factor` (1 in the published configs), in fp32 as the reference divides its fp32 buffer.
      const int rotated = static_cast<int>(spec.partial_rotary_factor * d) / 2;
      const auto factor = static_cast<float>(spec.factor);
      for (int i = 0; i < half; ++i)
        add_pair(table, i, i + half, i < rotated ? inverse_frequency(spec.theta, i, d) / factor : 0, 0);
      break;
    }
    case RopeKind::kTwoDHalves: {
      if (d % 4 != 0) fail(ErrorKind::kUnsupported, "[rope] 2D RoPE needs head_dim divisible by 4, got {}", d);
      table.axes = 2;
      const int c = d / 2;
      for (int part = 0; part < 2; ++part) {
        for (int i = 0; i < c / 2; ++i) {
          add_pair(table, part * c + i, part * c + i + c / 2, inverse_frequency(spec.theta, i, c), part);
        }
      }
      break;
    }
    case RopeKind::kTwoDConcat: {
      if (d % 4 != 0) fail(ErrorKind::kUnsupported, "[rope] 2D RoPE needs head_dim divisible by 4, got {}", d);
      table.axes = 2;
      const int quarter = d / 4;
      for (int j = 0; j < half; ++j) {
        add_pair(table, j, j + half, inverse_frequency(spec.theta, j % quarter, half), j < quarter ? 0 : 1);
      }
      break;
    }
    case RopeKind::kMropeInterleaved: {
      const auto& s = spec.mrope_section;
      if (s[0] < 0 || s[1] < 0 || s[2] < 0 || s[0] + s[1] + s[2] != half) {
        fail(ErrorKind::kUnsupported, "[rope] mrope_section [{}, {}, {}] must add up to head_dim/2 = {}", s[0], s[1],
             s[2], half);
      }
      table.axes = 3;
      for (int i = 0; i < half; ++i) {
        int axis = 0;
        if (i % 3 == 1 && i < 3 * s[1]) axis = 1;
        if (i % 3 == 2 && i < 3 * s[2]) axis = 2;
        add_pair(table, i, i + half, inverse_frequency(spec.theta, i, d), axis);
      }
      break;
    }
  }
  return table;
}

}  // namespace loom::backend
