#include "vision/resize.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace loom::vision {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // 8 bits of result, 2 bits of headroom for negative lobes

double bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Per output position: the first input index and the fixed-point weights of the inputs it reads.
struct Kernel {
  int taps = 0;                 // coefficient slots per output position
  std::vector<int> first;       // first input index
  std::vector<int> count;       // inputs actually read (≤ taps)
  std::vector<int32_t> weight;  // taps per output position, fixed point
};

Kernel make_kernel(int in_size, int out_size, ResampleFilter filter) {
  double (*fn)(double) = filter == ResampleFilter::kBilinear ? bilinear : bicubic;
  const double base_support = filter == ResampleFilter::kBilinear ? 1.0 : 2.0;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = scale < 1.0 ? 1.0 : scale;
  const double support = base_support * filter_scale;
  Kernel k;
  k.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  k.first.resize(out_size);
  k.count.resize(out_size);
  k.weight.assign(static_cast<size_t>(out_size) * k.taps, 0);
  std::vector<double> w(k.taps);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    // Truncation toward zero after adding 0.5, as in Pillow (only ever negative before the clamp).
    int lo = static_cast<int>(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = static_cast<int>(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    const int n = hi - lo;
    const double inverse_scale = 1.0 / filter_scale;  // multiply by the reciprocal, as Pillow does: same rounding
    double sum = 0.0;
    for (int i = 0; i < n; ++i) {
      w[i] = fn((i + lo - center + 0.5) * inverse_scale);
      sum += w[i];
    }
    int32_t* out = &k.weight[static_cast<size_t>(o) * k.taps];
    for (int i = 0; i < n; ++i) {
      const double normalised = sum != 0.0 ? w[i] / sum : w[i];
      const double fixed = normalised * (1 << kPrecisionBits);
      out[i] = static_cast<int32_t>(normalised < 0 ? fixed - 0.5 : fixed + 0.5);
    }
    k.first[o] = lo;
    k.count[o] = n;
  }
  return k;
}

uint8_t clip8(int64_t accumulator) {
  const int64_t v = accumulator >> kPrecisionBits;  // arithmetic shift: floor
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

constexpr int64_t kHalf = int64_t{1} << (kPrecisionBits - 1);

// Rows [row0, row0 + out.height) of `in` resampled along x into `out`.
void horizontal(const Image& in, int row0, const Kernel& k, Image& out) {
  for (int y = 0; y < out.height; ++y) {
    const uint8_t* src = in.row(row0 + y);
    uint8_t* dst = out.row(y);
    for (int x = 0; x < out.width; ++x) {
      const int32_t* w = &k.weight[static_cast<size_t>(x) * k.taps];
      const uint8_t* p = src + static_cast<size_t>(k.first[x]) * 3;
      int64_t r = kHalf, g = kHalf, b = kHalf;
      for (int i = 0; i < k.count[x]; ++i) {
        r += int64_t{p[i * 3 + 0]} * w[i];
        g += int64_t{p[i * 3 + 1]} * w[i];
        b += int64_t{p[i * 3 + 2]} * w[i];
      }
      dst[x * 3 + 0] = clip8(r);
      dst[x * 3 + 1] = clip8(g);
      dst[x * 3 + 2] = clip8(b);
    }
  }
}

// `in` resampled along y into `out`; kernel indices are relative to input row `row0`.
void vertical(const Image& in, int row0, const Kernel& k, Image& out) {
  const size_t stride = static_cast<size_t>(in.width) * 3;
  std::vector<int64_t> acc(stride);
  for (int y = 0; y < out.height; ++y) {
    const int32_t* w = &k.weight[static_cast<size_t>(y) * k.taps];
    std::fill(acc.begin(), acc.end(), kHalf);
    for (int i = 0; i < k.count[y]; ++i) {
      const uint8_t* src = in.row(k.first[y] - row0 + i);
      const int64_t weight = w[i];
      for (size_t c = 0; c < stride; ++c) acc[c] += int64_t{src[c]} * weight;
    }
    uint8_t* dst = out.row(y);
    for (size_t c = 0; c < stride; ++c) dst[c] = clip8(acc[c]);
  }
}

}  // namespace

ResampleFilter resample_filter_from_pil(int code) {
  if (code == 2) return ResampleFilter::kBilinear;
  if (code == 3) return ResampleFilter::kBicubic;
  fail(ErrorKind::kUnsupported, "resample filter {} is not supported (expected 2 = BILINEAR or 3 = BICUBIC)", code);
}

Image resize(const Image& input, int width, int height, ResampleFilter filter) {
  if (width < 1 || height < 1) fail(ErrorKind::kInvalidRequest, "cannot resize to {}x{}", width, height);
  if (input.width < 1 || input.height < 1) fail(ErrorKind::kInvalidRequest, "cannot resize an empty image");
  if (width == input.width && height == input.height) return input;

  const bool need_horizontal = width != input.width;
  const bool need_vertical = height != input.height;
  const Kernel kx = make_kernel(input.width, width, filter);
  const Kernel ky = make_kernel(input.height, height, filter);

  // Only the input rows the vertical pass reads go through the horizontal pass (as in Pillow; same result).
  int row0 = 0, row1 = input.height;
  if (need_vertical) {
    row0 = ky.first.front();
    row1 = ky.first.back() + ky.count.back();
  }
  const Image* current = &input;
  Image temp;
  if (need_horizontal) {
    temp = Image(width, row1 - row0);
    horizontal(input, row0, kx, temp);
    current = &temp;
  } else {
    row0 = 0;
  }
  if (!need_vertical) return temp;
  Image out(current->width, height);
  vertical(*current, row0, ky, out);
  return out;
}

}  // namespace loom::vision
