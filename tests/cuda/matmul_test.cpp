// Matmul and embedding in every weight format on the CUDA backend against the CPU backend, with weights quantized by
// weights::quant::quantize from fresh random matrices.
//
// Tolerance of matmul: both backends compute Σ_j x_j·w_j in fp32 from the same decoded weights, in different orders.
// A sum of n products in fp32 is within γ_n·Σ|x_j·w_j| ≈ n·u·M of the exact value (u = 2^-24; the CPU bound in
// quant_kernels.h is (G + m + 8)·u·M ≤ (cols + 64)·u·M), so the two backends agree within 2·(cols + 64)·u·M per
// output, M computed here from the dequantized weights. Embeddings decode bit-exactly on both sides: compared exactly.
#include <optional>

#include "core/float_formats.h"
#include "cuda_test_util.h"
#include "weights/quant/quantize.h"

namespace loom::backend::cuda::testing {
namespace {

using weights::QuantMode;
using weights::QuantSpec;
using weights::Weight;

struct Case {
  std::string name;
  Weight weight;  // host
};

Weight float_weight(const Tensor& w, DType dtype) {
  Weight out;
  out.rows = w.dim(0);
  out.cols = w.dim(1);
  out.values = Tensor::zeros(dtype, w.shape());
  for (int64_t i = 0; i < w.elements(); ++i) {
    const float v = w.data_as<float>()[i];
    if (dtype == DType::kF32) out.values.data_as<float>()[i] = v;
    if (dtype == DType::kBF16) out.values.data_as<uint16_t>()[i] = float_to_bf16(v);
    if (dtype == DType::kF16) out.values.data_as<uint16_t>()[i] = float_to_f16(v);
  }
  return out;
}

class CudaMatmulTest : public CudaTest {
 protected:
  std::vector<Case> cases(int64_t rows, int64_t cols) {
    const Tensor w = random({rows, cols});
    const float* data = w.data_as<float>();
    std::vector<Case> out;
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      out.push_back({std::string("float ") + std::string(dtype_name(dtype)), float_weight(w, dtype)});
    }
    for (int bits : {2, 3, 4, 5, 6, 8}) {
      for (int group : {32, 64, 128}) {
        if (cols % group != 0) continue;
        const DType scale_dtype = group == 32 ? DType::kF32 : group == 64 ? DType::kBF16 : DType::kF16;
        const QuantSpec spec{QuantMode::kAffine, bits, group};
        out.push_back({weights::quant_spec_name(spec) + " " + std::string(dtype_name(scale_dtype)),
                       weights::quant::quantize(data, rows, cols, spec, scale_dtype)});
      }
    }
    out.push_back({"mxfp4", weights::quant::quantize(data, rows, cols, {QuantMode::kMxfp4, 4, 32})});
    out.push_back({"mxfp8", weights::quant::quantize(data, rows, cols, {QuantMode::kMxfp8, 8, 32})});
    out.push_back({"nvfp4", weights::quant::quantize(data, rows, cols, {QuantMode::kNvfp4, 4, 16})});
    out.push_back({"nvfp4 global",
                   weights::quant::quantize_nvfp4(data, rows, cols, weights::quant::absolute_max(data, rows, cols))});
    return out;
  }

  // Runs x [n, cols] · wᵀ on both backends and checks every output against the bound above.
  void check_matmul(const Case& c, int64_t n) {
    const Weight& w = c.weight;
    const Tensor x = random({n, w.cols});
    Tensor expected = Tensor::zeros(DType::kF32, {n, w.rows});
    cpu().matmul(x, w, expected);
    const Weight device_w = gpu().upload(w);
    Tensor got_device = gpu().allocate(DType::kF32, {n, w.rows});
    gpu().matmul(gpu().upload(x), device_w, got_device);
    const Tensor got = gpu().to_host(got_device);
    std::vector<float> dense(static_cast<size_t>(w.rows * w.cols));
    weights::quant::dequantize_rows(w, 0, w.rows, dense.data());
    int failures = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t r = 0; r < w.rows; ++r) {
        double m = 0;
        for (int64_t j = 0; j < w.cols; ++j) {
          m += std::abs(static_cast<double>(x.data_as<float>()[i * w.cols + j]) *
                        dense[static_cast<size_t>(r * w.cols + j)]);
        }
        const double tolerance = 2.0 * static_cast<double>(w.cols + 64) * std::ldexp(1.0, -24) * m;
        const float a = got.data_as<float>()[i * w.rows + r], b = expected.data_as<float>()[i * w.rows + r];
        if (std::abs(static_cast<double>(a) - b) > tolerance && failures++ < 5) {
          ADD_FAILURE() << c.name << " n=" << n << " [" << i << ", " << r << "]: " << a << " vs " << b << " (tolerance "
                        << tolerance << ")";
        }
      }
    }
  }
};

TEST_F(CudaMatmulTest, DecodeGemvEveryFormat) {
  // 67 rows: an odd count, so the last warp owns a single row.
  for (const Case& c : cases(67, 256)) {
    for (int64_t n : {1, 2, 4, 7, 16}) check_matmul(c, n);
  }
}

TEST_F(CudaMatmulTest, PrefillGemmEveryFormat) {
  for (const Case& c : cases(70, 384)) check_matmul(c, 37);
}

TEST_F(CudaMatmulTest, FloatWeightsOfAnyWidth) {
  // C·p·p columns of a patch embedding (3·14·14 = 588) are no multiple of 32: the element-wise float path.
  const Tensor w = random({45, 588});
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    const Case c{"float width 588", float_weight(w, dtype)};
    for (int64_t n : {1, 5, 33}) check_matmul(c, n);
  }
}

TEST_F(CudaMatmulTest, EmbeddingEveryFormatIsExact) {
  const std::vector<int32_t> ids = {5, 0, 63, 5, 17};
  for (const Case& c : cases(64, 256)) {
    Tensor expected = Tensor::zeros(DType::kF32, {5, 256});
    cpu().embedding(c.weight, ids, 1.5f, expected);
    Tensor got = gpu().allocate(DType::kF32, {5, 256});
    gpu().embedding(gpu().upload(c.weight), ids, 1.5f, got);
    EXPECT_EQ(max_diff(got, expected), 0.0f) << c.name;
  }
  const Weight table = gpu().upload(cases(64, 256).front().weight);
  Tensor out = gpu().allocate(DType::kF32, {1, 256});
  EXPECT_THROW(gpu().embedding(table, std::vector<int32_t>{64}, 1.0f, out), Error);
}

TEST_F(CudaMatmulTest, EmbeddingShardEveryFormatMatchesTheCpu) {
  // The shard holds vocabulary rows [64, 128); ids below, inside and past it.
  const std::vector<int32_t> ids = {64, 0, 127, 128, 70, 63, 70};
  for (const Case& c : cases(64, 256)) {
    Tensor expected = Tensor::zeros(DType::kF32, {7, 256});
    cpu().embedding_shard(c.weight, ids, 64, 1.5f, expected);
    Tensor got = gpu().allocate(DType::kF32, {7, 256});
    gpu().embedding_shard(gpu().upload(c.weight), ids, 64, 1.5f, got);
    EXPECT_EQ(max_diff(got, expected), 0.0f) << c.name;
  }
}

}  // namespace
}  // namespace loom::backend::cuda::testing
