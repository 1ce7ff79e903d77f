// RMSNorm variants and LayerNorm over the last dimension; per-head norms are the same op on [T, H, D].
#include <cmath>

#include "backend/cpu/check.h"
#include "backend/cpu/cpu_backend.h"

namespace loom::backend::cpu {
namespace {

// Rows per task so a task touches at least ~16k elements.
int64_t row_grain(int64_t dim) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(dim, 1));
}

}  // namespace

void CpuBackend::rms_norm(const Tensor& x, const Tensor* weight, const RmsNormSpec& spec, Tensor& out) {
  expect_f32(x, "rms_norm", "x");
  expect_f32(out, "rms_norm", "out");
  expect_same_shape(x, out, "rms_norm", "out");
  const int64_t dim = last_dim(x);
  const float* w = nullptr;
  if (spec.weight != NormWeight::kNone) {
    if (weight == nullptr) fail(ErrorKind::kInternal, "[rms_norm] this variant needs a weight");
    expect_f32(*weight, "rms_norm", "weight");
    expect_shape(*weight, {dim}, "rms_norm", "weight");
    w = weight->data_as<float>();
  }
  if (dim == 0) return;
  const float* in = x.data_as<float>();
  float* dst = out.data_as<float>();
  parallel(x.elements() / dim, row_grain(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = in + r * dim;
      float* o = dst + r * dim;
      // Sum of squares in double: dim is at most a few thousand, and this makes the norm exact to fp32 rounding
      // whatever the magnitude spread of the activations (Gemma's residual stream reaches 1e4+).
      double sum_squares = 0;
      for (int64_t i = 0; i < dim; ++i) sum_squares += static_cast<double>(row[i]) * row[i];
      const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(dim) + spec.eps));
      switch (spec.weight) {
        case NormWeight::kNone:
          for (int64_t i = 0; i < dim; ++i) o[i] = row[i] * inv_rms;
          break;
        case NormWeight::kScale:
          for (int64_t i = 0; i < dim; ++i) o[i] = row[i] * inv_rms * w[i];
          break;
        case NormWeight::kOnePlus:
          for (int64_t i = 0; i < dim; ++i) o[i] = row[i] * inv_rms * (1.0f + w[i]);
          break;
      }
    }
  });
}

void CpuBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) {
  expect_f32(x, "layer_norm", "x");
  expect_f32(out, "layer_norm", "out");
  expect_same_shape(x, out, "layer_norm", "out");
  const int64_t dim = last_dim(x);
  expect_f32(weight, "layer_norm", "weight");
  expect_f32(bias, "layer_norm", "bias");
  expect_shape(weight, {dim}, "layer_norm", "weight");
  expect_shape(bias, {dim}, "layer_norm", "bias");
  if (dim == 0) return;
  const float* in = x.data_as<float>();
  const float* w = weight.data_as<float>();
  const float* b = bias.data_as<float>();
  float* dst = out.data_as<float>();
  parallel(x.elements() / dim, row_grain(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = in + r * dim;
      float* o = dst + r * dim;
      // Two passes (mean, then squared deviations): no cancellation when |mean| ≫ std.
      double sum = 0;
      for (int64_t i = 0; i < dim; ++i) sum += row[i];
      const double mean = sum / static_cast<double>(dim);
      double squares = 0;
      for (int64_t i = 0; i < dim; ++i) squares += (row[i] - mean) * (row[i] - mean);
      const float inv_std = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(dim) + eps));
      const float mean_f = static_cast<float>(mean);
      for (int64_t i = 0; i < dim; ++i) o[i] = (row[i] - mean_f) * inv_std * w[i] + b[i];
    }
  });
}

}  // namespace loom::backend::cpu
