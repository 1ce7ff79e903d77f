#include <cmath>

#include "backend/reference/reference.h"
#include "core/error.h"

namespace loom::backend::reference {
namespace {

// inv_freq as the reference builds its fp32 buffer: 1 / θ^(2i/dim) for i < count.
std::vector<float> inv_freq(double theta, int count, int dim) {
  std::vector<float> out;
  for (int i = 0; i < count; ++i) out.push_back(static_cast<float>(1.0 / std::pow(theta, 2.0 * i / dim)));
  return out;
}

// x·cos(emb) + rotate_half(x)·sin(emb) on one block of length 2·freqs.size(), emb = cat(freqs, freqs).
void rotate_block(float* x, const std::vector<double>& freqs) {
  const size_t half = freqs.size();
  std::vector<double> in(x, x + 2 * half);
  for (size_t j = 0; j < 2 * half; ++j) {
    const double angle = freqs[j % half];
    const double rotated = j < half ? -in[j + half] : in[j - half];
    x[j] = static_cast<float>(in[j] * std::cos(angle) + rotated * std::sin(angle));
  }
}

// The reference forms angles with an fp32 matmul of inv_freq and positions (one product each, rounded to fp32), then
// takes cos/sin of that fp32 angle. Matching that rounding matters at large positions; cos/sin are exact here.
std::vector<double> angles(const std::vector<float>& inv, double position) {
  std::vector<double> out;
  for (float f : inv) out.push_back(static_cast<float>(static_cast<float>(position) * f));
  return out;
}

}  // namespace

void rope(std::span<float> x, int64_t tokens, int64_t heads, const RopeSpec& spec, std::span<const int32_t> positions) {
  const int d = spec.head_dim;
  for (int64_t t = 0; t < tokens; ++t) {
    auto pos = [&](int axis) { return static_cast<double>(positions[static_cast<size_t>(axis * tokens + t)]); };
    for (int64_t h = 0; h < heads; ++h) {
      float* head = x.data() + (t * heads + h) * d;
      switch (spec.kind) {
        case RopeKind::kDefault:
        case RopeKind::kLinear: {
          std::vector<float> inv = inv_freq(spec.theta, d / 2, d);
          if (spec.kind == RopeKind::kLinear) {
            for (float& f : inv) f = static_cast<float>(f / spec.factor);
          }
          rotate_block(head, angles(inv, pos(0)));
          break;
        }
        case RopeKind::kProportional: {
          const int rope_angles = static_cast<int>(spec.partial_rotary_factor * d) / 2;
          std::vector<float> inv = inv_freq(spec.theta, rope_angles, d);
          for (float& f : inv) f /= static_cast<float>(spec.factor);
          inv.resize(static_cast<size_t>(d / 2), 0.0f);  // the non-rotated tail: frequency zero
          rotate_block(head, angles(inv, pos(0)));
          break;
        }
        case RopeKind::kTwoDHalves: {
          const int c = d / 2;
          for (int part = 0; part < 2; ++part)
            rotate_block(head + part * c, angles(inv_freq(spec.theta, c / 2, c), pos(part)));
          break;
        }
        case RopeKind::kTwoDConcat: {
          const std::vector<float> inv = inv_freq(spec.theta, d / 4, d / 2);
          std::vector<double> freqs = angles(inv, pos(0));
          const std::vector<double> cols = angles(inv, pos(1));
          freqs.insert(freqs.end(), cols.begin(), cols.end());
          rotate_block(head, freqs);
          break;
        }
        case RopeKind::kMropeInterleaved: {
          const std::vector<float> inv = inv_freq(spec.theta, d / 2, d);
          std::vector<double> freqs = angles(inv, pos(0));
          for (int axis = 1; axis <= 2; ++axis) {
            const std::vector<double> other = angles(inv, pos(axis));
            // freqs_t[..., axis : 3·section[axis] : 3] = freqs[axis][..., same slice]
            for (int i = axis; i < 3 * spec.mrope_section[static_cast<size_t>(axis)]; i += 3) {
              freqs[static_cast<size_t>(i)] = other[static_cast<size_t>(i)];
            }
          }
          rotate_block(head, freqs);
          break;
        }
      }
    }
  }
}

}  // namespace loom::backend::reference
