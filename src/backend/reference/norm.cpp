#include <cmath>

#include "backend/reference/reference.h"

namespace loom::backend::reference {

std::vector<float> rms_norm(std::span<const float> x, int64_t dim, std::span<const float> weight,
                            const RmsNormSpec& spec) {
  std::vector<float> out(x.size());
  const size_t d = static_cast<size_t>(dim);
  for (size_t row = 0; row < x.size() / d; ++row) {
    double sum_squares = 0;
    for (size_t i = 0; i < d; ++i) sum_squares += static_cast<double>(x[row * d + i]) * x[row * d + i];
    const double inv_rms = 1.0 / std::sqrt(sum_squares / dim + spec.eps);
    for (size_t i = 0; i < d; ++i) {
      double w = 1.0;
      if (spec.weight == NormWeight::kScale) w = weight[i];
      if (spec.weight == NormWeight::kOnePlus) w = 1.0 + weight[i];
      out[row * d + i] = static_cast<float>(x[row * d + i] * inv_rms * w);
    }
  }
  return out;
}

std::vector<float> layer_norm(std::span<const float> x, int64_t dim, std::span<const float> weight,
                              std::span<const float> bias, float eps) {
  std::vector<float> out(x.size());
  const size_t d = static_cast<size_t>(dim);
  for (size_t row = 0; row < x.size() / d; ++row) {
    double mean = 0;
    for (size_t i = 0; i < d; ++i) mean += x[row * d + i];
    mean /= dim;
    double variance = 0;
    for (size_t i = 0; i < d; ++i) variance += (x[row * d + i] - mean) * (x[row * d + i] - mean);
    variance /= dim;  // biased, as torch.nn.LayerNorm
    const double inv_std = 1.0 / std::sqrt(variance + eps);
    for (size_t i = 0; i < d; ++i) {
      out[row * d + i] = static_cast<float>((x[row * d + i] - mean) * inv_std * weight[i] + bias[i]);
    }
  }
  return out;
}

double activation(Activation act, double x) {
  switch (act) {
    case Activation::kGeluTanh: {
      const double k = std::sqrt(2.0 / M_PI);
      return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
    }
    case Activation::kGeluErf:
      return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Activation::kSilu:
      return x / (1.0 + std::exp(-x));
  }
  return 0;
}

double softcap(double x, double cap) {
  return cap * std::tanh(x / cap);
}

}  // namespace loom::backend::reference
