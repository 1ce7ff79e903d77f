#pragma once
// Shared helpers of the CUDA backend tests: every test runs an op on the CUDA backend and on the CPU backend (the
// reference: itself tested against plain formulas and numpy in tests/backend/) on the same fresh random inputs and
// compares. Tests skip when no GPU is present, so the suite passes on build machines without one.

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace loom::backend::cuda::testing {

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
    gpu_ = std::make_unique<CudaBackend>(0);
  }

  CudaBackend& gpu() { return *gpu_; }
  cpu::CpuBackend& cpu() { return cpu_; }

  // Host F32 tensor with values uniform in [lo, hi).
  Tensor random(Shape shape, float lo = -1.0f, float hi = 1.0f) {
    Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
    std::uniform_real_distribution<float> dist(lo, hi);
    for (float& v : t.span<float>()) v = dist(rng_);
    return t;
  }

  std::mt19937& rng() { return rng_; }

  // Max |a − b| over two tensors, one of which may be on the GPU.
  float max_diff(const Tensor& a, const Tensor& b) {
    const Tensor ha = a.device().kind == DeviceKind::kCpu ? a : gpu().to_host(a);
    const Tensor hb = b.device().kind == DeviceKind::kCpu ? b : gpu().to_host(b);
    EXPECT_EQ(ha.shape(), hb.shape());
    float diff = 0;
    for (int64_t i = 0; i < ha.elements(); ++i) {
      diff = std::max(diff, std::abs(ha.data_as<float>()[i] - hb.data_as<float>()[i]));
    }
    return diff;
  }

  float max_abs(const Tensor& a) {
    float m = 0;
    for (float v : a.span<const float>()) m = std::max(m, std::abs(v));
    return m;
  }

 private:
  std::unique_ptr<CudaBackend> gpu_;
  cpu::CpuBackend cpu_;
  std::mt19937 rng_{1234};
};

}  // namespace loom::backend::cuda::testing
