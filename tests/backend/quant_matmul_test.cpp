// Quantized matmul and embedding on the CPU backend, on every SIMD table the machine has. The independent reference
// is weights::quant::dequantize_rows (the definition of what a stored weight means) followed by a double-precision
// product; weights come from weights::quant::quantize on random matrices. Tolerances are the fp32 error bounds of
// quant_kernels.h (fused GEMV) and of a plain dot product (decode + sgemm); decoders must be bit-exact.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/weight_formats.h"
#include "core/error.h"
#include "core/float_formats.h"
#include "test_util.h"
#include "weights/quant/bit_packing.h"
#include "weights/quant/quantize.h"

namespace loom::backend {
namespace {

using testing::random_floats;
using testing::tensor_of;
using weights::QuantMode;
using weights::QuantSpec;
using weights::Weight;

class IsaScope {
 public:
  explicit IsaScope(cpu::Isa isa) { cpu::force_isa(isa); }
  ~IsaScope() { cpu::force_isa(std::nullopt); }
};

std::string isa_name(cpu::Isa isa) {
  return isa == cpu::Isa::kAvx2 ? "avx2" : "generic";
}

struct Format {
  QuantSpec spec;
  DType scale_dtype = DType::kBF16;
  std::optional<float> global_scale;  // nvfp4 only
  std::string name() const {
    std::string s = weights::quant_spec_name(spec);
    if (spec.mode == QuantMode::kAffine) s += std::string(" ") + std::string(dtype_name(scale_dtype));
    if (global_scale) s += " global";
    return s;
  }
};

std::vector<Format> all_formats() {
  std::vector<Format> out;
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int group : {32, 64, 128}) {
      for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
        out.push_back({{QuantMode::kAffine, bits, group}, dtype, std::nullopt});
      }
    }
  }
  out.push_back({{QuantMode::kMxfp4, 4, 32}, DType::kU8, std::nullopt});
  out.push_back({{QuantMode::kMxfp8, 8, 32}, DType::kU8, std::nullopt});
  out.push_back({{QuantMode::kNvfp4, 4, 16}, DType::kU8, std::nullopt});
  out.push_back({{QuantMode::kNvfp4, 4, 16}, DType::kU8, 3.5f});
  return out;
}

// Rows of random values around a per-row offset, so affine biases matter and some groups are all of one sign.
Weight random_quantized(std::mt19937& rng, const Format& f, int64_t rows, int64_t cols) {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  std::uniform_real_distribution<float> offset(-1.5f, 1.5f), spread(0.05f, 2.0f), unit(-1.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float o = offset(rng), s = spread(rng);
    for (int64_t c = 0; c < cols; ++c) w[static_cast<size_t>(r * cols + c)] = o + s * unit(rng);
  }
  if (f.spec.mode == QuantMode::kNvfp4) return weights::quant::quantize_nvfp4(w.data(), rows, cols, f.global_scale);
  return weights::quant::quantize(w.data(), rows, cols, f.spec, f.scale_dtype);
}

std::vector<float> dequantized(const Weight& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  weights::quant::dequantize_rows(w, 0, w.rows, out.data());
  return out;
}

float stored_float(const Tensor& t, int64_t index) {
  switch (t.dtype()) {
    case DType::kF32:
      return t.data_as<float>()[index];
    case DType::kBF16:
      return bf16_to_float(t.data_as<uint16_t>()[index]);
    default:
      return f16_to_float(t.data_as<uint16_t>()[index]);
  }
}

// The quant_kernels.h bound of the fused GEMV for output (x row, weight row r): (G + m + 8)·u·M, with the 1% slack
// of γ_k over k·u.
double fused_bound(const Weight& w, const std::vector<float>& deq, const float* x, int64_t r) {
  const int group = w.quant.group_size;
  const int64_t m = w.cols / group;
  double magnitude = 0;
  for (int64_t c = 0; c < w.cols; ++c) {
    const double xa = std::abs(static_cast<double>(x[c]));
    if (w.quant.mode == QuantMode::kAffine) {
      const int64_t g = r * m + c / group;
      const uint32_t q =
          weights::quant::code_at(w.values.data_as<uint32_t>() + r * (w.cols * w.quant.bits / 32), c, w.quant.bits);
      magnitude +=
          xa * (std::abs(static_cast<double>(stored_float(w.scales, g))) * q + std::abs(stored_float(w.biases, g)));
    } else {
      magnitude += xa * std::abs(static_cast<double>(deq[static_cast<size_t>(r * w.cols + c)]));
    }
  }
  return 1.01 * static_cast<double>(group + m + 8) * testing::kUnit * magnitude + 1e-30;
}

// out [n, w.rows] (row stride ldo) against Σ x·dequantized in double. `fused` picks the GEMV bound, otherwise the
// plain dot-product bound of sgemm on exactly decoded weights.
void expect_product(const std::vector<float>& x, int64_t n, const Weight& w, const float* out, int64_t ldo, bool fused,
                    const std::string& what) {
  const std::vector<float> deq = dequantized(w);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x.data() + i * w.cols;
    for (int64_t r = 0; r < w.rows; ++r) {
      double exact = 0, magnitude = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        const double p = static_cast<double>(xi[c]) * deq[static_cast<size_t>(r * w.cols + c)];
        exact += p;
        magnitude += std::abs(p);
      }
      const double bound = fused ? fused_bound(w, deq, xi, r) : testing::dot_bound(w.cols, magnitude);
      ASSERT_NEAR(out[i * ldo + r], exact, bound) << what << " at [" << i << ", " << r << "]";
    }
  }
}

bool same_bits(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

// Column counts: one group, an odd number of groups, and several.
std::vector<int64_t> column_counts(int group) {
  return {group, 3 * group, group == 16 ? 16 * 33 : 4 * group};
}

TEST(QuantMatmul, MatchesDequantizedProductForEveryFormatShapeAndIsa) {
  ThreadPool pool(3);
  cpu::CpuBackend backend(pool);
  std::mt19937 rng(21);
  for (cpu::Isa isa : cpu::supported_isas()) {
    IsaScope scope(isa);
    for (const Format& f : all_formats()) {
      for (int64_t rows : {1, 3, 33}) {
        for (int64_t cols : column_counts(f.spec.group_size)) {
          const Weight w = random_quantized(rng, f, rows, cols);
          // 1–4 rows run the fused GEMV, 5 and 9 the decoded tiles through sgemm.
          for (int64_t n : {1, 2, 3, 4, 5, 9}) {
            const auto x = random_floats(rng, static_cast<size_t>(n * cols));
            Tensor out = Tensor::zeros(DType::kF32, {n, rows});
            backend.matmul(tensor_of(x, {n, cols}), w, out);
            expect_product(x, n, w, out.data_as<float>(), rows, n <= 4,
                           fmt::format("{} {} [{}x{}] n={}", isa_name(isa), f.name(), rows, cols, n));
          }
        }
      }
    }
  }
}

// The kernels called directly: a row range that does not start at 0, an output stride wider than the range, more
// activation rows than one register block, and ranges longer than the block of rows whose scales a kernel converts
// at once (32 rows), ending inside a block.
TEST(QuantMatmul, GemvCoversRowRangesStridesAndManyActivationRows) {
  struct Case {
    int64_t rows, r0, r1, n;
  };
  std::mt19937 rng(22);
  for (cpu::Isa isa : cpu::supported_isas()) {
    IsaScope scope(isa);
    for (const Format& f : all_formats()) {
      for (const Case& c : {Case{11, 3, 10, 7}, Case{75, 3, 70, 1}, Case{75, 1, 74, 2}}) {
        const int64_t rows = c.rows, cols = 2 * std::max(f.spec.group_size, 32), n = c.n, r0 = c.r0, r1 = c.r1,
                      ldo = r1 - r0 + 2;
        const Weight w = random_quantized(rng, f, rows, cols);
        const cpu::FormatKernels& kernels = cpu::format_kernels(w, "test");
        const auto x = random_floats(rng, static_cast<size_t>(n * cols));
        std::vector<float> out(static_cast<size_t>(n * ldo), -7.0f);
        kernels.gemv(w, x.data(), n, r0, r1, out.data(), ldo);
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t r = r1 - r0; r < ldo; ++r) {
            ASSERT_EQ(out[static_cast<size_t>(i * ldo + r)], -7.0f) << "wrote past the range";
          }
        }
        const std::vector<float> deq = dequantized(w);
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t r = r0; r < r1; ++r) {
            double exact = 0;
            for (int64_t c = 0; c < cols; ++c) {
              exact +=
                  static_cast<double>(x[static_cast<size_t>(i * cols + c)]) * deq[static_cast<size_t>(r * cols + c)];
            }
            ASSERT_NEAR(out[static_cast<size_t>(i * ldo + r - r0)], exact, fused_bound(w, deq, x.data() + i * cols, r))
                << isa_name(isa) << " " << f.name() << " at [" << i << ", " << r << "] of rows [" << r0 << ", " << r1
                << ")";
          }
        }
      }
    }
  }
}

TEST(QuantMatmul, DecodersAreBitExact) {
  std::mt19937 rng(23);
  for (cpu::Isa isa : cpu::supported_isas()) {
    IsaScope scope(isa);
    for (const Format& f : all_formats()) {
      const Weight w = random_quantized(rng, f, 9, 3 * std::max(f.spec.group_size, 32));
      const std::vector<float> want = dequantized(w);
      std::vector<float> got(static_cast<size_t>(6 * w.cols));
      cpu::format_kernels(w, "test").decode(w, 2, 8, got.data());
      for (size_t k = 0; k < got.size(); ++k) {
        ASSERT_TRUE(same_bits(got[k], want[2 * static_cast<size_t>(w.cols) + k]))
            << isa_name(isa) << " " << f.name() << " element " << k << ": " << got[k] << " vs "
            << want[2 * static_cast<size_t>(w.cols) + k];
      }
    }
  }
}

// Every E4M3 byte (normals, subnormals, ±0, the NaN codes) and every E2M1 code under several scales, including E8M0
// byte 0 (2^-127, so the products are float32 subnormals).
TEST(QuantMatmul, EveryFloatCodeDecodesAndMultipliesExactly) {
  for (cpu::Isa isa : cpu::supported_isas()) {
    IsaScope scope(isa);
    for (QuantMode mode : {QuantMode::kMxfp8, QuantMode::kMxfp4, QuantMode::kNvfp4}) {
      Weight w;
      w.rows = 4;
      w.cols = 256;
      w.quant =
          mode == QuantMode::kMxfp8 ? QuantSpec{mode, 8, 32} : QuantSpec{mode, 4, mode == QuantMode::kNvfp4 ? 16 : 32};
      w.values = Tensor::zeros(DType::kU32, {4, 256 * w.quant.bits / 32});
      w.scales = Tensor::zeros(DType::kU8, {4, 256 / w.quant.group_size});
      auto* bytes = static_cast<uint8_t*>(w.values.data());
      const int64_t row_bytes = 256 * w.quant.bits / 8;
      // Rows 0 and 1 hold every byte value; rows 2 and 3 the same without the E4M3 NaN codes.
      for (int64_t i = 0; i < 4 * row_bytes; ++i) {
        auto b = static_cast<uint8_t>((i * 37 + i / row_bytes) & 0xFF);
        if (i >= 2 * row_bytes && mode == QuantMode::kMxfp8 && (b & 0x7F) == 0x7F) --b;
        bytes[i] = b;
      }
      const uint8_t scale_bytes[] = {127, 0, 130, 100, 1, 120, 125, 131};
      for (int64_t i = 0; i < w.scales.elements(); ++i) w.scales.data_as<uint8_t>()[i] = scale_bytes[i % 8];
      if (mode == QuantMode::kNvfp4) w.output_scale = 0.375f;
      const std::vector<float> want = dequantized(w);
      std::vector<float> got(want.size());
      const cpu::FormatKernels& kernels = cpu::format_kernels(w, "test");
      kernels.decode(w, 0, 4, got.data());
      for (size_t k = 0; k < got.size(); ++k) {
        ASSERT_TRUE(same_bits(got[k], want[k])) << isa_name(isa) << " " << weights::quant_spec_name(w.quant) << " " << k
                                                << ": " << got[k] << " vs " << want[k];
      }
      // The GEMV over the same codes: NaN codes make NaN rows, the others match the product.
      std::mt19937 rng(24);
      const auto x = random_floats(rng, 256);
      std::vector<float> out(4);
      kernels.gemv(w, x.data(), 1, 0, 4, out.data(), 4);
      for (int64_t r = 0; r < 4; ++r) {
        double exact = 0;
        for (int64_t c = 0; c < 256; ++c)
          exact += static_cast<double>(x[static_cast<size_t>(c)]) * want[static_cast<size_t>(r * 256 + c)];
        if (std::isnan(exact)) {
          EXPECT_TRUE(std::isnan(out[static_cast<size_t>(r)])) << isa_name(isa) << " row " << r;
        } else {
          EXPECT_NEAR(out[static_cast<size_t>(r)], exact, fused_bound(w, want, x.data(), r))
              << isa_name(isa) << " row " << r;
        }
      }
    }
  }
}

TEST(QuantEmbedding, GathersScaledRowsExactly) {
  cpu::CpuBackend backend;
  std::mt19937 rng(25);
  for (cpu::Isa isa : cpu::supported_isas()) {
    IsaScope scope(isa);
    for (const Format& f : all_formats()) {
      const Weight table = random_quantized(rng, f, 40, 2 * std::max(f.spec.group_size, 32));
      const std::vector<int32_t> ids{0, 39, 7, 7, 23};
      Tensor out = Tensor::zeros(DType::kF32, {5, table.cols});
      backend.embedding(table, ids, 45.25f, out);
      const std::vector<float> deq = dequantized(table);
      for (size_t t = 0; t < ids.size(); ++t) {
        for (int64_t c = 0; c < table.cols; ++c) {
          const float want = deq[static_cast<size_t>(ids[t] * table.cols + c)] * 45.25f;
          ASSERT_TRUE(same_bits(out.data_as<float>()[static_cast<int64_t>(t) * table.cols + c], want))
              << isa_name(isa) << " " << f.name() << " token " << t << " column " << c;
        }
      }
    }
  }
}

TEST(QuantEmbeddingShard, GathersRowsInRangeAndZerosTheRest) {
  cpu::CpuBackend backend;
  std::mt19937 rng(26);
  for (const Format& f : all_formats()) {
    // The shard holds vocabulary rows [100, 140).
    const Weight table = random_quantized(rng, f, 40, 2 * std::max(f.spec.group_size, 32));
    const std::vector<int32_t> ids{100, 139, 99, 140, 107, 3};
    Tensor out = Tensor::zeros(DType::kF32, {6, table.cols});
    backend.embedding_shard(table, ids, 100, 45.25f, out);
    const std::vector<float> deq = dequantized(table);
    for (size_t t = 0; t < ids.size(); ++t) {
      const int64_t local = ids[t] - 100;
      for (int64_t c = 0; c < table.cols; ++c) {
        const float want = local >= 0 && local < 40 ? deq[static_cast<size_t>(local * table.cols + c)] * 45.25f : 0.0f;
        ASSERT_TRUE(same_bits(out.data_as<float>()[static_cast<int64_t>(t) * table.cols + c], want))
            << f.name() << " token " << t << " column " << c;
      }
    }
  }
}

TEST(QuantMatmul, StorageThatDisagreesWithTheSpecIsAnInternalError) {
  cpu::CpuBackend backend;
  Weight w;
  w.rows = 4;
  w.cols = 64;
  w.quant = {QuantMode::kAffine, 4, 64};
  w.values = Tensor::zeros(DType::kU32, {4, 8});  // no scales or biases
  Tensor x = Tensor::zeros(DType::kF32, {1, 64});
  Tensor out = Tensor::zeros(DType::kF32, {1, 4});
  try {
    backend.matmul(x, w, out);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInternal);
    EXPECT_EQ(std::string(e.what()).rfind("[matmul] ", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace loom::backend
