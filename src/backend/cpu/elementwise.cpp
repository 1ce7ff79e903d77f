// Activations (plain and gated), elementwise arithmetic, softcap and clamp. All fp32; out may alias an input.
#include <algorithm>
#include <cmath>

#include "backend/cpu/check.h"
#include "backend/cpu/cpu_backend.h"

namespace loom::backend::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;
// Transcendental activations cost ~10-20 ns an element, so a decode step's MLP activation (a few thousand elements)
// is worth splitting: a parallel_for costs about a microsecond.
constexpr int64_t kTranscendentalGrain = 1 << 10;

float apply(Activation act, float x) {
  switch (act) {
    case Activation::kGeluTanh: {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    }
    case Activation::kGeluErf:
      return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
    case Activation::kSilu:
      return x / (1.0f + std::exp(-x));
  }
  return x;
}

void check_unary(const Tensor& x, const Tensor& out, std::string_view op) {
  expect_f32(x, op, "x");
  expect_f32(out, op, "out");
  expect_same_shape(x, out, op, "out");
}

}  // namespace

void CpuBackend::activation(Activation act, const Tensor& x, Tensor& out) {
  check_unary(x, out, "activation");
  const float* in = x.data_as<float>();
  float* o = out.data_as<float>();
  parallel(x.elements(), kTranscendentalGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = apply(act, in[i]);
  });
}

void CpuBackend::gated_activation(Activation act, const Tensor& gate, const Tensor& up, Tensor& out) {
  expect_f32(gate, "gated_activation", "gate");
  expect_f32(up, "gated_activation", "up");
  expect_f32(out, "gated_activation", "out");
  expect_same_shape(gate, up, "gated_activation", "up");
  expect_same_shape(gate, out, "gated_activation", "out");
  const float* g = gate.data_as<float>();
  const float* u = up.data_as<float>();
  float* o = out.data_as<float>();
  parallel(gate.elements(), kTranscendentalGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = apply(act, g[i]) * u[i];
  });
}

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  expect_f32(a, "add", "a");
  expect_f32(b, "add", "b");
  expect_f32(out, "add", "out");
  expect_same_shape(a, b, "add", "b");
  expect_same_shape(a, out, "add", "out");
  const float* x = a.data_as<float>();
  const float* y = b.data_as<float>();
  float* o = out.data_as<float>();
  parallel(a.elements(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = x[i] + y[i];
  });
}

void CpuBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
  expect_f32(a, "mul", "a");
  expect_f32(b, "mul", "b");
  expect_f32(out, "mul", "out");
  expect_same_shape(a, b, "mul", "b");
  expect_same_shape(a, out, "mul", "out");
  const float* x = a.data_as<float>();
  const float* y = b.data_as<float>();
  float* o = out.data_as<float>();
  parallel(a.elements(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = x[i] * y[i];
  });
}

void CpuBackend::scale(const Tensor& x, float factor, Tensor& out) {
  check_unary(x, out, "scale");
  const float* in = x.data_as<float>();
  float* o = out.data_as<float>();
  parallel(x.elements(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = in[i] * factor;
  });
}

void CpuBackend::softcap(const Tensor& x, float cap, Tensor& out) {
  check_unary(x, out, "softcap");
  if (!(cap > 0)) fail(ErrorKind::kInternal, "[softcap] cap must be positive, got {}", cap);
  const float* in = x.data_as<float>();
  float* o = out.data_as<float>();
  const float inv = 1.0f / cap;
  parallel(x.elements(), kTranscendentalGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = cap * std::tanh(in[i] * inv);
  });
}

void CpuBackend::clamp(const Tensor& x, float lo, float hi, Tensor& out) {
  check_unary(x, out, "clamp");
  const float* in = x.data_as<float>();
  float* o = out.data_as<float>();
  parallel(x.elements(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = std::min(std::max(in[i], lo), hi);
  });
}

}  // namespace loom::backend::cpu
