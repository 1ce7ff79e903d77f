// Elementwise ops, norms, RoPE, sampling helpers, vision helpers and memory transfers of the CUDA backend against the
// CPU backend.
//
// Tolerances: elementwise ops on the GPU use the same fp32 formula as the CPU, but CUDA's tanhf / erff / expf /
// sincosf differ from glibc's by a few ulp, so results agree to ~1e-6 relative (checked at 1e-5 of the value range).
// Norm statistics are summed in double on both sides; only the last fp32 products differ in rounding (1e-5).
#include <numeric>

#include "backend/rope_table.h"
#include "cuda_test_util.h"

namespace loom::backend::cuda::testing {
namespace {

TEST_F(CudaTest, AllocateUploadCopyAndReadBack) {
  const Tensor host = random({3, 5});
  Tensor zeros = gpu().allocate(DType::kF32, {3, 5});
  EXPECT_EQ(zeros.device().kind, DeviceKind::kCuda);
  EXPECT_EQ(max_abs(gpu().to_host(zeros)), 0.0f);
  const Tensor device = gpu().upload(host);
  gpu().copy(device, zeros);
  EXPECT_EQ(max_diff(zeros, host), 0.0f);
  Tensor back = Tensor::zeros(DType::kF32, {3, 5});
  gpu().copy(zeros, back);
  EXPECT_EQ(max_diff(back, host), 0.0f);
  EXPECT_THROW(gpu().upload(device), Error);
  EXPECT_THROW(gpu().to_host(host), Error);
  // Host tensors are refused by ops, with the op's name.
  Tensor out = Tensor::zeros(DType::kF32, {3, 5});
  EXPECT_THROW(gpu().add(host, host, out), Error);
}

TEST_F(CudaTest, ElementwiseMatchesCpu) {
  const Tensor a = random({37, 129}, -4, 4), b = random({37, 129}, -4, 4);
  const Tensor da = gpu().upload(a), db = gpu().upload(b);
  Tensor expected = Tensor::zeros(DType::kF32, a.shape());
  Tensor got = gpu().allocate(DType::kF32, a.shape());
  const auto check = [&](const char* what, float tolerance) {
    EXPECT_LE(max_diff(got, expected), tolerance * std::max(1.0f, max_abs(expected))) << what;
  };
  for (Activation act : {Activation::kGeluTanh, Activation::kGeluErf, Activation::kSilu}) {
    cpu().activation(act, a, expected);
    gpu().activation(act, da, got);
    check("activation", 1e-5f);
    cpu().gated_activation(act, a, b, expected);
    gpu().gated_activation(act, da, db, got);
    check("gated_activation", 1e-5f);
  }
  cpu().add(a, b, expected);
  gpu().add(da, db, got);
  check("add", 0);
  cpu().mul(a, b, expected);
  gpu().mul(da, db, got);
  check("mul", 0);
  cpu().scale(a, 0.37f, expected);
  gpu().scale(da, 0.37f, got);
  check("scale", 0);
  cpu().softcap(a, 3.0f, expected);
  gpu().softcap(da, 3.0f, got);
  check("softcap", 1e-5f);
  cpu().clamp(a, -1.5f, 2.0f, expected);
  gpu().clamp(da, -1.5f, 2.0f, got);
  check("clamp", 0);
  // In place (out aliases an input), as the models use add.
  Tensor in_place = gpu().upload(a);
  gpu().add(in_place, db, in_place);
  cpu().add(a, b, expected);
  EXPECT_EQ(max_diff(in_place, expected), 0.0f);
  Tensor bias_host = random({129});
  Tensor biased = a;
  Tensor biased_copy = Tensor::zeros(DType::kF32, a.shape());
  cpu().copy(a, biased_copy);
  cpu().add_bias(biased_copy, bias_host);
  Tensor device_biased = gpu().upload(biased);
  gpu().add_bias(device_biased, gpu().upload(bias_host));
  EXPECT_EQ(max_diff(device_biased, biased_copy), 0.0f);
}

TEST_F(CudaTest, NormsMatchCpu) {
  // Residual-stream-like magnitudes, and per-head shapes [T, H, D].
  for (const Shape& shape : {Shape{5, 640}, Shape{7, 4, 16}, Shape{3, 2560}}) {
    const Tensor x = random(shape, -300, 300);
    const Tensor w = random({shape.back()});
    const Tensor bias = random({shape.back()});
    const Tensor dx = gpu().upload(x), dw = gpu().upload(w), db = gpu().upload(bias);
    Tensor expected = Tensor::zeros(DType::kF32, shape);
    Tensor got = gpu().allocate(DType::kF32, shape);
    for (NormWeight kind : {NormWeight::kNone, NormWeight::kScale, NormWeight::kOnePlus}) {
      const RmsNormSpec spec{.eps = 1e-6f, .weight = kind};
      cpu().rms_norm(x, &w, spec, expected);
      gpu().rms_norm(dx, &dw, spec, got);
      EXPECT_LE(max_diff(got, expected), 1e-5f * max_abs(expected)) << shape_string(shape);
    }
    cpu().layer_norm(x, w, bias, 1e-5f, expected);
    gpu().layer_norm(dx, dw, db, 1e-5f, got);
    EXPECT_LE(max_diff(got, expected), 1e-5f * max_abs(expected)) << shape_string(shape);
  }
}

TEST_F(CudaTest, RopeMatchesCpuForEveryTableKind) {
  std::vector<RopeSpec> specs = {
      {.kind = RopeKind::kDefault, .head_dim = 64, .theta = 10000.0},
      {.kind = RopeKind::kLinear, .head_dim = 32, .theta = 1e6, .factor = 8.0},
      {.kind = RopeKind::kProportional, .head_dim = 64, .theta = 1e6, .partial_rotary_factor = 0.25},
      {.kind = RopeKind::kTwoDHalves, .head_dim = 32, .theta = 100.0},
      {.kind = RopeKind::kTwoDConcat, .head_dim = 32, .theta = 10000.0},
      {.kind = RopeKind::kMropeInterleaved, .head_dim = 32, .theta = 5e6, .mrope_section = {8, 4, 4}},
  };
  for (const RopeSpec& spec : specs) {
    const RopeTable table = make_rope_table(spec);
    const int64_t tokens = 9, heads = 3;
    std::vector<int32_t> positions(static_cast<size_t>(tokens * table.axes));
    std::uniform_int_distribution<int32_t> pos(0, 5000);
    for (int32_t& p : positions) p = pos(rng());
    Tensor x = random({tokens, heads, spec.head_dim}, -2, 2);
    Tensor dx = gpu().upload(x);
    cpu().rope(x, table, positions);
    gpu().rope(dx, table, positions);
    // Angles up to 5000 rad: both sides form the same fp32 angle, and sin/cos of it agree to a few ulp.
    EXPECT_LE(max_diff(dx, x), 2e-5f) << static_cast<int>(spec.kind);
  }
}

TEST_F(CudaTest, SoftmaxArgmaxTopKMatchCpu) {
  Tensor x = random({4, 3001}, -10, 10);
  x.data_as<float>()[17] = x.data_as<float>()[2500] = 50.0f;  // a tie in row 0: the lower index wins
  x.data_as<float>()[3001 + 5] = x.data_as<float>()[3001 + 6] = -3.0f;
  const Tensor dx = gpu().upload(x);
  Tensor expected = Tensor::zeros(DType::kF32, x.shape());
  Tensor got = gpu().allocate(DType::kF32, x.shape());
  cpu().softmax(x, expected);
  gpu().softmax(dx, got);
  EXPECT_LE(max_diff(got, expected), 1e-6f);
  std::vector<int32_t> cpu_max(4), gpu_max(4);
  cpu().argmax(x, cpu_max);
  gpu().argmax(dx, gpu_max);
  EXPECT_EQ(gpu_max, cpu_max);
  EXPECT_EQ(gpu_max[0], 17);
  for (int k : {1, 5, 40}) {
    std::vector<int32_t> ci(4 * k), gi(4 * k);
    std::vector<float> cv(4 * k), gv(4 * k);
    cpu().top_k(x, k, ci, cv);
    gpu().top_k(dx, k, gi, gv);
    EXPECT_EQ(gi, ci) << k;
    EXPECT_EQ(gv, cv) << k;
  }
}

TEST_F(CudaTest, VisionHelpersMatchCpu) {
  const Tensor grid = random({8 * 12, 40});
  Tensor expected = Tensor::zeros(DType::kF32, {4 * 6, 40});
  Tensor got = gpu().allocate(DType::kF32, {4 * 6, 40});
  cpu().avg_pool_2d(grid, 8, 12, 2, expected);
  gpu().avg_pool_2d(gpu().upload(grid), 8, 12, 2, got);
  EXPECT_LE(max_diff(got, expected), 1e-6f);

  const Tensor image = random({3, 28, 42});
  Tensor patches = Tensor::zeros(DType::kF32, {2 * 3, 3 * 14 * 14});
  Tensor device_patches = gpu().allocate(DType::kF32, patches.shape());
  cpu().extract_patches(image, 14, patches);
  gpu().extract_patches(gpu().upload(image), 14, device_patches);
  EXPECT_EQ(max_diff(device_patches, patches), 0.0f);
}

}  // namespace
}  // namespace loom::backend::cuda::testing
