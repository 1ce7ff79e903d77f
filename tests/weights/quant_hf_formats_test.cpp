// Hugging Face layouts are built here from their documented formulas (weight-formats.md §4) and the converted
// Weights must dequantize to exactly what those formulas give. Source bytes sit at an odd address, as tensors in an
// MLX- or HF-written safetensors mapping may.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "weights/quant/hf_formats.h"
#include "weights/quant/quantize.h"

namespace loom::weights::quant {
namespace {

// Borrowed tensor whose data starts one byte into a buffer, i.e. misaligned for anything wider than a byte.
struct Unaligned {
  std::vector<uint8_t> buffer;
  Tensor tensor;
  Unaligned(DType dtype, Shape shape, const void* bytes, size_t size) : buffer(size + 1) {
    std::memcpy(buffer.data() + 1, bytes, size);
    tensor = Tensor::borrow(dtype, std::move(shape), buffer.data() + 1);
  }
};

std::vector<float> dequantize_all(const Weight& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  dequantize_rows(w, 0, w.rows, out.data());
  return out;
}

TEST(QuantHfFormats, GptOssMxfp4) {
  const int64_t experts = 2, out = 3, in = 64;
  std::mt19937 rng(21);
  std::vector<uint8_t> blocks(static_cast<size_t>(experts * out * in / 2)), scales(experts * out * in / 32);
  for (auto& b : blocks) b = static_cast<uint8_t>(rng());
  for (auto& s : scales) s = static_cast<uint8_t>(110 + rng() % 30);
  Unaligned b(DType::kU8, {experts, out, in / 32, 16}, blocks.data(), blocks.size());
  Unaligned s(DType::kU8, {experts, out, in / 32}, scales.data(), scales.size());
  const Weight w = from_gpt_oss_mxfp4(b.tensor, s.tensor, "experts.gate_up_proj");
  EXPECT_EQ(w.rows, experts * out);
  EXPECT_EQ(w.cols, in);
  const std::vector<float> got = dequantize_all(w);
  for (int64_t r = 0; r < experts * out; ++r) {
    for (int64_t j = 0; j < in / 2; ++j) {
      const uint8_t byte = blocks[static_cast<size_t>(r * in / 2 + j)];
      const int scale = scales[static_cast<size_t>(r * in / 32 + j / 16)] - 127;
      EXPECT_EQ(got[static_cast<size_t>(r * in + 2 * j)], std::ldexp(e2m1_to_float(byte & 0xF), scale));
      EXPECT_EQ(got[static_cast<size_t>(r * in + 2 * j + 1)], std::ldexp(e2m1_to_float(byte >> 4), scale));
    }
  }
  Unaligned short_scales(DType::kU8, {experts, out, 1}, scales.data(), experts * out);
  EXPECT_THROW(from_gpt_oss_mxfp4(b.tensor, short_scales.tensor, "x"), Error);
}

struct Fp4Data {
  std::vector<uint8_t> packed, scales;
};

Fp4Data random_nvfp4(int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  Fp4Data d{std::vector<uint8_t>(static_cast<size_t>(out * in / 2)), std::vector<uint8_t>(out * in / 16)};
  for (auto& b : d.packed) b = static_cast<uint8_t>(rng());
  for (auto& s : d.scales) s = static_cast<uint8_t>(rng() % 0x7F);  // every finite positive E4M3 code
  return d;
}

float nvfp4_element(const Fp4Data& d, int64_t in, int64_t r, int64_t c) {
  const uint8_t byte = d.packed[static_cast<size_t>(r * in / 2 + c / 2)];
  return e2m1_to_float(c % 2 ? byte >> 4 : byte & 0xF) *
         e4m3_to_float(d.scales[static_cast<size_t>(r * in / 16 + c / 16)]);
}

TEST(QuantHfFormats, ModelOptNvfp4) {
  const int64_t out = 5, in = 64;
  const Fp4Data d = random_nvfp4(out, in, 22);
  const float scale_2 = 0.0123f;
  Unaligned p(DType::kU8, {out, in / 2}, d.packed.data(), d.packed.size());
  Unaligned s(DType::kF8E4M3, {out, in / 16}, d.scales.data(), d.scales.size());
  Unaligned g(DType::kF32, {}, &scale_2, 4);
  const Weight w = from_modelopt_nvfp4(p.tensor, s.tensor, g.tensor, "q_proj");
  EXPECT_EQ(w.output_scale, scale_2);
  const std::vector<float> got = dequantize_all(w);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      ASSERT_EQ(got[static_cast<size_t>(r * in + c)], nvfp4_element(d, in, r, c) * scale_2) << r << "," << c;
    }
  }
  const float negative = -1.0f;
  Unaligned bad(DType::kF32, {1}, &negative, 4);
  EXPECT_THROW(from_modelopt_nvfp4(p.tensor, s.tensor, bad.tensor, "q_proj"), Error);
}

TEST(QuantHfFormats, CompressedTensorsNvfp4) {
  const int64_t out = 4, in = 32;
  const Fp4Data d = random_nvfp4(out, in, 23);
  const float global = 448.0f * 6.0f / 3.7f;
  Unaligned p(DType::kU8, {out, in / 2}, d.packed.data(), d.packed.size());
  Unaligned s(DType::kF8E4M3, {out, in / 16}, d.scales.data(), d.scales.size());
  Unaligned g(DType::kF32, {1}, &global, 4);
  const Weight w = from_compressed_tensors_nvfp4(p.tensor, s.tensor, g.tensor, "o_proj");
  const std::vector<float> got = dequantize_all(w);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      const float expected = nvfp4_element(d, in, r, c) / global;  // the HF formula divides
      ASSERT_NEAR(got[static_cast<size_t>(r * in + c)], expected, std::fabs(expected) * 2e-7f) << r << "," << c;
    }
  }
}

TEST(QuantHfFormats, CompressedTensorsMxfp4) {
  const int64_t out = 2, in = 64;
  std::vector<uint8_t> packed(out * in / 2), scales(out * in / 32);
  for (size_t i = 0; i < packed.size(); ++i) packed[i] = static_cast<uint8_t>(i * 37);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = static_cast<uint8_t>(120 + i);
  Unaligned p(DType::kU8, {out, in / 2}, packed.data(), packed.size());
  Unaligned s(DType::kU8, {out, in / 32}, scales.data(), scales.size());
  const std::vector<float> got = dequantize_all(from_compressed_tensors_mxfp4(p.tensor, s.tensor, "down_proj"));
  for (int64_t i = 0; i < out * in; ++i) {
    const uint8_t byte = packed[static_cast<size_t>(i / 2)];
    const float expected =
        std::ldexp(e2m1_to_float(i % 2 ? byte >> 4 : byte & 0xF), scales[static_cast<size_t>(i / 32)] - 127);
    ASSERT_EQ(got[static_cast<size_t>(i)], expected) << i;
  }
}

// (u − 2^(b−1) − zp)·s, computed in double and rounded once: the compressed-tensors definition.
void check_pack_quantized(int bits, DType scale_dtype, bool zero_point, bool expect_affine) {
  const int64_t out = 3, in = 128, group = 64, groups = in / group;
  std::mt19937 rng(24 + bits);
  std::vector<uint8_t> codes(static_cast<size_t>(out * in));
  for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
  std::vector<uint32_t> words(static_cast<size_t>(out * in * bits / 32));
  for (int64_t i = 0; i < out * in; ++i) {  // LSB-first, 32/bits values per int32
    words[static_cast<size_t>(i * bits / 32)] |= static_cast<uint32_t>(codes[static_cast<size_t>(i)])
                                                 << ((i * bits) % 32);
  }
  std::vector<uint16_t> scale_bits(static_cast<size_t>(out * groups));
  std::vector<float> scale_values(scale_bits.size());
  std::vector<int8_t> zps(scale_bits.size());
  std::uniform_real_distribution<float> unit(0.001f, 0.1f);
  for (size_t i = 0; i < scale_bits.size(); ++i) {
    const float v = unit(rng);
    scale_bits[i] = scale_dtype == DType::kBF16 ? float_to_bf16(v) : float_to_f16(v);
    scale_values[i] = scale_dtype == DType::kBF16 ? bf16_to_float(scale_bits[i]) : f16_to_float(scale_bits[i]);
    zps[i] = zero_point ? static_cast<int8_t>(static_cast<int>(rng() % 7) - 3) : 0;
  }
  Unaligned p(DType::kI32, {out, in * bits / 32}, words.data(), words.size() * 4);
  Unaligned s(scale_dtype, {out, groups}, scale_bits.data(), scale_bits.size() * 2);
  Unaligned z(DType::kI8, {out, groups}, zps.data(), zps.size());
  const Weight w = from_compressed_tensors_int(p.tensor, s.tensor, zero_point ? z.tensor : Tensor(), bits, "w");
  EXPECT_EQ(w.quant.mode == QuantMode::kAffine, expect_affine) << bits << " bits, zero point " << zero_point;
  const std::vector<float> got = dequantize_all(w);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      const size_t g = static_cast<size_t>(r * groups + c / group);
      const double u = codes[static_cast<size_t>(r * in + c)];
      const auto expected = static_cast<float>((u - std::ldexp(1.0, bits - 1) - zps[g]) * scale_values[g]);
      ASSERT_EQ(got[static_cast<size_t>(r * in + c)], expected) << bits << " bits r" << r << " c" << c;
    }
  }
}

TEST(QuantHfFormats, CompressedTensorsPackQuantizedInt) {
  // Symmetric: the bias −2^(b−1)·s is a power-of-two multiple, always exact -> affine.
  for (int bits : {2, 4, 8}) check_pack_quantized(bits, DType::kBF16, false, true);
  check_pack_quantized(4, DType::kF16, false, true);
  // A zero point of e.g. −3 makes the bias (8−3)·s, which needs more bits than bf16 has -> float fallback.
  check_pack_quantized(4, DType::kBF16, true, false);
  std::vector<uint32_t> words(8);
  std::vector<uint16_t> scales(1);
  Unaligned p(DType::kI32, {1, 8}, words.data(), 32);
  Unaligned s(DType::kBF16, {1, 1}, scales.data(), 2);
  EXPECT_THROW(from_compressed_tensors_int(p.tensor, s.tensor, Tensor(), 3, "w"), Error);
}

TEST(QuantHfFormats, BlockFp8MultipliesByScaleInv) {
  const int64_t out = 130, in = 200;  // partial blocks on both axes
  std::mt19937 rng(25);
  std::vector<uint8_t> codes(static_cast<size_t>(out * in));
  for (auto& c : codes) {
    c = static_cast<uint8_t>(rng());
    if ((c & 0x7F) == 0x7F) c = 0;
  }
  std::vector<float> scale_inv(2 * 2);
  for (auto& s : scale_inv) s = std::uniform_real_distribution<float>(1e-4f, 1e-2f)(rng);
  Unaligned w(DType::kF8E4M3, {out, in}, codes.data(), codes.size());
  Unaligned s(DType::kF32, {2, 2}, scale_inv.data(), scale_inv.size() * 4);
  const Weight weight = dequantize_block_fp8(w.tensor, s.tensor, 128, 128, "mlp.down_proj");
  const std::vector<float> got = dequantize_all(weight);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      const float expected = e4m3_to_float(codes[static_cast<size_t>(r * in + c)]) *
                             scale_inv[static_cast<size_t>((r / 128) * 2 + c / 128)];
      ASSERT_EQ(got[static_cast<size_t>(r * in + c)], expected);
    }
  }
  Unaligned wrong(DType::kF32, {1, 2}, scale_inv.data(), 8);
  EXPECT_THROW(dequantize_block_fp8(w.tensor, wrong.tensor, 128, 128, "mlp.down_proj"), Error);
}

}  // namespace
}  // namespace loom::weights::quant
