// matmul, embedding and bias against the scalar reference, on every SIMD table the machine has, for both the GEMV
// (few rows) and the GEMM (OpenBLAS, tiled decode) regimes.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/weight_formats.h"
#include "backend/reference/reference.h"
#include "core/error.h"
#include "test_util.h"

namespace loom::backend {
namespace {

using testing::random_floats;
using testing::random_weight;
using testing::tensor_of;

class IsaScope {
 public:
  explicit IsaScope(cpu::Isa isa) { cpu::force_isa(isa); }
  ~IsaScope() { cpu::force_isa(std::nullopt); }
};

// Checks out [n, w.rows] against the double-precision product, within the fp32 dot-product bound of each entry.
void expect_matmul_close(const std::vector<float>& x, int64_t n, const weights::Weight& w,
                         const std::vector<float>& out, const std::string& what) {
  const std::vector<float> want = reference::matmul(x, n, w);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double magnitude = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        magnitude += std::abs(static_cast<double>(x[static_cast<size_t>(i * w.cols + c)]) *
                              reference::float_element(w, r * w.cols + c));
      }
      const size_t at = static_cast<size_t>(i * w.rows + r);
      ASSERT_NEAR(out[at], want[at], testing::dot_bound(w.cols, magnitude)) << what << " at [" << i << ", " << r << "]";
    }
  }
}

TEST(Matmul, MatchesReferenceForEveryFloatFormatIsaAndRowCount) {
  ThreadPool pool(3);
  cpu::CpuBackend backend(pool);
  std::mt19937 rng(11);
  const std::vector<std::pair<int64_t, int64_t>> shapes{{1, 1}, {7, 33}, {33, 7}, {70, 259}, {259, 64}};
  for (cpu::Isa isa : cpu::supported_isas()) {
    IsaScope scope(isa);
    for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
      for (auto [rows, cols] : shapes) {
        const weights::Weight w = random_weight(rng, dtype, rows, cols);
        for (int64_t n : {1, 3, 4, 5, 33}) {
          const auto x = random_floats(rng, static_cast<size_t>(n * cols));
          Tensor out = Tensor::zeros(DType::kF32, {n, rows});
          backend.matmul(tensor_of(x, {n, cols}), w, out);
          expect_matmul_close(
              x, n, w, testing::values_of(out),
              fmt::format("isa {} {} [{}x{}] n={}", static_cast<int>(isa), dtype_name(dtype), rows, cols, n));
        }
      }
    }
  }
}

// Enough rows that the prefill path decodes several tiles, the last one partial, with a column count that is not a
// multiple of any vector width.
TEST(Matmul, TiledPrefillCoversEveryOutputRow) {
  cpu::CpuBackend backend;
  std::mt19937 rng(12);
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    const weights::Weight w = random_weight(rng, dtype, 150, 4100);
    const auto x = random_floats(rng, 6 * 4100);
    Tensor out = Tensor::zeros(DType::kF32, {6, 150});
    backend.matmul(tensor_of(x, {6, 4100}), w, out);
    expect_matmul_close(x, 6, w, testing::values_of(out), std::string(dtype_name(dtype)));
  }
}

// The path a quantized format without a fused kernel takes: decode a few rows, then the f32 GEMV.
TEST(Matmul, GemvByDecodingMatchesReference) {
  std::mt19937 rng(13);
  const weights::Weight w = random_weight(rng, DType::kBF16, 37, 45);
  const cpu::FormatKernels& kernels = cpu::format_kernels(w, "test");
  const auto x = random_floats(rng, 2 * 45);
  std::vector<float> out(2 * 37);
  cpu::gemv_by_decoding(kernels.decode, w, x.data(), 2, 0, 37, out.data(), 37);
  expect_matmul_close(x, 2, w, out, "gemv_by_decoding");
}

TEST(Matmul, RejectsMismatchedShapes) {
  cpu::CpuBackend backend;
  std::mt19937 rng(14);
  const weights::Weight w = random_weight(rng, DType::kF32, 5, 8);
  Tensor x = Tensor::zeros(DType::kF32, {2, 7});
  Tensor out = Tensor::zeros(DType::kF32, {2, 5});
  EXPECT_THROW(backend.matmul(x, w, out), Error);
  Tensor x_ok = Tensor::zeros(DType::kF32, {2, 8});
  Tensor out_bad = Tensor::zeros(DType::kF32, {2, 4});
  EXPECT_THROW(backend.matmul(x_ok, w, out_bad), Error);
}

TEST(Embedding, GathersScaledRowsExactly) {
  cpu::CpuBackend backend;
  std::mt19937 rng(15);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const weights::Weight table = random_weight(rng, dtype, 50, 33);
    const std::vector<int32_t> ids{0, 49, 7, 7, 23};
    Tensor out = Tensor::zeros(DType::kF32, {5, 33});
    backend.embedding(table, ids, 50.5f, out);
    // Decoding is exact and the scale is one fp32 multiply in both: bit-identical.
    EXPECT_EQ(testing::values_of(out), reference::embedding(table, ids, 50.5f)) << dtype_name(dtype);
  }
}

TEST(Embedding, RejectsIdsOutsideTheVocabulary) {
  cpu::CpuBackend backend;
  std::mt19937 rng(16);
  const weights::Weight table = random_weight(rng, DType::kF32, 10, 4);
  Tensor out = Tensor::zeros(DType::kF32, {1, 4});
  for (int32_t bad : {-1, 10}) {
    const std::vector<int32_t> ids{bad};
    try {
      backend.embedding(table, ids, 1.0f, out);
      FAIL() << "expected an error for id " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    }
  }
}

TEST(EmbeddingShard, GathersTheRowsInRangeAndZerosTheRest) {
  cpu::CpuBackend backend;
  std::mt19937 rng(18);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    // Vocabulary rows [20, 32) of a larger table; ids below, inside and past the shard (even past any vocabulary).
    const weights::Weight shard = random_weight(rng, dtype, 12, 17);
    const std::vector<int32_t> ids{0, 20, 31, 19, 32, 25, 25, 1000};
    Tensor out = Tensor::zeros(DType::kF32, {8, 17});
    for (float& v : out.span<float>()) v = 9.0f;  // every row must be written
    backend.embedding_shard(shard, ids, 20, 2.5f, out);
    EXPECT_EQ(testing::values_of(out), reference::embedding_shard(shard, ids, 20, 2.5f)) << dtype_name(dtype);
    // The reference itself: in-range rows are the plain lookup of the local row, the rest zero.
    const std::vector<int32_t> local{5};
    const std::vector<float> row = reference::embedding(shard, local, 2.5f);
    const std::vector<float> got = reference::embedding_shard(shard, std::vector<int32_t>{25}, 20, 2.5f);
    EXPECT_EQ(got, row);
    EXPECT_EQ(reference::embedding_shard(shard, std::vector<int32_t>{19}, 20, 2.5f), std::vector<float>(17, 0.0f));
  }
}

TEST(AddBias, AddsTheBiasToEveryRow) {
  cpu::CpuBackend backend;
  std::mt19937 rng(17);
  const auto x = random_floats(rng, 7 * 33);
  const auto bias = random_floats(rng, 33);
  Tensor t = tensor_of(x, {7, 33});
  backend.add_bias(t, tensor_of(bias, {33}));
  for (size_t r = 0; r < 7; ++r) {
    for (size_t c = 0; c < 33; ++c) ASSERT_EQ(t.data_as<float>()[r * 33 + c], x[r * 33 + c] + bias[c]);
  }
}

}  // namespace
}  // namespace loom::backend
