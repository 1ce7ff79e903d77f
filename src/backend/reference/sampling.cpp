#include <algorithm>
#include <cmath>
#include <numeric>

#include "backend/reference/reference.h"

namespace loom::backend::reference {

std::vector<float> softmax(std::span<const float> x, int64_t n) {
  std::vector<float> out(x.size());
  for (size_t row = 0; row < x.size() / static_cast<size_t>(n); ++row) {
    const float* in = x.data() + row * n;
    const double max_value = *std::max_element(in, in + n);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += std::exp(in[i] - max_value);
    for (int64_t i = 0; i < n; ++i) out[row * n + i] = static_cast<float>(std::exp(in[i] - max_value) / total);
  }
  return out;
}

std::vector<int32_t> argmax(std::span<const float> x, int64_t n) {
  std::vector<int32_t> out;
  for (size_t row = 0; row < x.size() / static_cast<size_t>(n); ++row) {
    const float* in = x.data() + row * n;
    out.push_back(static_cast<int32_t>(std::max_element(in, in + n) - in));  // first of equal maxima
  }
  return out;
}

void top_k(std::span<const float> x, int64_t n, int k, std::vector<int32_t>& indices, std::vector<float>& values) {
  indices.clear();
  values.clear();
  for (size_t row = 0; row < x.size() / static_cast<size_t>(n); ++row) {
    const float* in = x.data() + row * n;
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return in[a] > in[b]; });
    for (int i = 0; i < k; ++i) {
      indices.push_back(order[static_cast<size_t>(i)]);
      values.push_back(in[order[static_cast<size_t>(i)]]);
    }
  }
}

std::vector<float> avg_pool_2d(std::span<const float> x, int64_t grid_h, int64_t grid_w, int64_t channels, int kernel) {
  const int64_t out_h = grid_h / kernel, out_w = grid_w / kernel;
  std::vector<float> out(static_cast<size_t>(out_h * out_w * channels));
  for (int64_t oy = 0; oy < out_h; ++oy) {
    for (int64_t ox = 0; ox < out_w; ++ox) {
      for (int64_t c = 0; c < channels; ++c) {
        double sum = 0;
        for (int dy = 0; dy < kernel; ++dy) {
          for (int dx = 0; dx < kernel; ++dx) sum += x[((oy * kernel + dy) * grid_w + ox * kernel + dx) * channels + c];
        }
        out[(oy * out_w + ox) * channels + c] = static_cast<float>(sum / (kernel * kernel));
      }
    }
  }
  return out;
}

std::vector<float> extract_patches(std::span<const float> image, int64_t channels, int64_t height, int64_t width,
                                   int patch) {
  std::vector<float> out;
  for (int64_t py = 0; py < height / patch; ++py) {
    for (int64_t px = 0; px < width / patch; ++px) {
      for (int64_t c = 0; c < channels; ++c) {
        for (int y = 0; y < patch; ++y) {
          for (int x = 0; x < patch; ++x) out.push_back(image[(c * height + py * patch + y) * width + px * patch + x]);
        }
      }
    }
  }
  return out;
}

}  // namespace loom::backend::reference
