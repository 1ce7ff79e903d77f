#include "weights/quant/hf_formats.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "weights/quant/bit_packing.h"
#include "weights/quant/quantize.h"

namespace loom::weights::quant {
namespace {

// A fresh, aligned tensor of `dtype` and `shape` holding a byte copy of `source`.
Tensor copy_bytes(const Tensor& source, DType dtype, Shape shape, std::string_view name) {
  Tensor out = Tensor::zeros(dtype, std::move(shape));
  if (out.bytes() != source.bytes()) {
    fail(ErrorKind::kInvalidFile, "{}: {} bytes cannot be viewed as {} {}", name, source.bytes(), dtype_name(dtype),
         shape_string(out.shape()));
  }
  if (source.bytes() != 0) std::memcpy(out.data(), source.data(), source.bytes());
  return out;
}

void expect_dtype(const Tensor& tensor, std::initializer_list<DType> allowed, std::string_view name,
                  std::string_view role) {
  if (tensor.empty()) fail(ErrorKind::kInvalidFile, "{}: missing {}", name, role);
  for (DType d : allowed) {
    if (tensor.dtype() == d) return;
  }
  std::string names;
  for (DType d : allowed) names += std::string(names.empty() ? "" : " or ") + std::string(dtype_name(d));
  fail(ErrorKind::kInvalidFile, "{}: {} has dtype {}, expected {}", name, role, dtype_name(tensor.dtype()), names);
}

float scalar_f32(const Tensor& tensor, std::string_view name, std::string_view role) {
  expect_dtype(tensor, {DType::kF32}, name, role);
  if (tensor.elements() != 1) {
    fail(ErrorKind::kInvalidFile, "{}: {} must hold one value, has shape {}", name, role, shape_string(tensor.shape()));
  }
  float value = 0.0f;
  std::memcpy(&value, tensor.data(), sizeof(float));
  if (!std::isfinite(value) || value <= 0.0f) {
    fail(ErrorKind::kInvalidFile, "{}: {} must be finite and positive, got {}", name, role, value);
  }
  return value;
}

float float_at(const Tensor& tensor, int64_t index) {
  switch (tensor.dtype()) {
    case DType::kF32: {
      float v = 0.0f;
      std::memcpy(&v, static_cast<const char*>(tensor.data()) + index * 4, 4);
      return v;
    }
    case DType::kBF16:
    case DType::kF16: {
      uint16_t bits = 0;
      std::memcpy(&bits, static_cast<const char*>(tensor.data()) + index * 2, 2);
      return tensor.dtype() == DType::kBF16 ? bf16_to_float(bits) : f16_to_float(bits);
    }
    default:
      fail(ErrorKind::kInternal, "float_at on {}", dtype_name(tensor.dtype()));
  }
}

// Packed FP4 codes [..., out, in/2] plus byte scales [..., out, in/group]: shared by the fp4 converters.
Weight fp4_weight(const Tensor& packed, const Tensor& scales, QuantMode mode, int group, std::string_view name) {
  expect_dtype(packed, {DType::kU8}, name, "packed FP4 weight");
  const DType scale_type = mode == QuantMode::kNvfp4 ? DType::kF8E4M3 : DType::kF8E8M0;
  expect_dtype(scales, {DType::kU8, scale_type}, name, "scales");
  if (packed.rank() < 2 || packed.rank() != scales.rank()) {
    fail(ErrorKind::kInvalidFile, "{}: packed weight {} and scales {} must have the same rank, at least 2", name,
         shape_string(packed.shape()), shape_string(scales.shape()));
  }
  const int64_t cols = packed.dim(-1) * 2;
  const int64_t rows = packed.elements() / std::max<int64_t>(packed.dim(-1), 1);
  Shape expected = packed.shape();
  expected.back() = cols / group;
  if (cols % group != 0 || scales.shape() != expected) {
    fail(ErrorKind::kInvalidFile, "{}: packed weight {} holds {} columns, so scales must be {} (group {}), got {}",
         name, shape_string(packed.shape()), cols, shape_string(expected), group, shape_string(scales.shape()));
  }
  Weight weight;
  weight.rows = rows;
  weight.cols = cols;
  weight.quant = QuantSpec{mode, 4, group};
  weight.values = copy_bytes(packed, DType::kU32, {rows, cols / 8}, name);
  weight.scales = copy_bytes(scales, DType::kU8, {rows, cols / group}, name);
  return weight;
}

}  // namespace

Weight from_gpt_oss_mxfp4(const Tensor& blocks, const Tensor& scales, std::string_view name) {
  expect_dtype(blocks, {DType::kU8}, name, "_blocks");
  if (blocks.rank() < 3 || blocks.dim(-1) != 16) {
    fail(ErrorKind::kInvalidFile, "{}: _blocks must be [..., out, in/32, 16], got {}", name,
         shape_string(blocks.shape()));
  }
  Shape packed_shape(blocks.shape().begin(), blocks.shape().end() - 2);
  packed_shape.push_back(blocks.dim(-2) * 16);
  Weight weight = fp4_weight(blocks.reshaped(packed_shape), scales, QuantMode::kMxfp4, 32, name);
  validate(weight, name);
  return weight;
}

Weight from_modelopt_nvfp4(const Tensor& weight, const Tensor& weight_scale, const Tensor& weight_scale_2,
                           std::string_view name) {
  Weight out = fp4_weight(weight, weight_scale, QuantMode::kNvfp4, 16, name);
  out.output_scale = scalar_f32(weight_scale_2, name, "weight_scale_2");
  validate(out, name);
  return out;
}

Weight from_compressed_tensors_nvfp4(const Tensor& weight_packed, const Tensor& weight_scale,
                                     const Tensor& weight_global_scale, std::string_view name) {
  Weight out = fp4_weight(weight_packed, weight_scale, QuantMode::kNvfp4, 16, name);
  out.output_scale = 1.0f / scalar_f32(weight_global_scale, name, "weight_global_scale");
  validate(out, name);
  return out;
}

Weight from_compressed_tensors_mxfp4(const Tensor& weight_packed, const Tensor& weight_scale, std::string_view name) {
  Weight out = fp4_weight(weight_packed, weight_scale, QuantMode::kMxfp4, 32, name);
  validate(out, name);
  return out;
}

Weight from_compressed_tensors_int(const Tensor& weight_packed, const Tensor& weight_scale,
                                   const Tensor& weight_zero_point, int bits, std::string_view name) {
  if (bits != 2 && bits != 4 && bits != 8) {
    fail(ErrorKind::kUnsupported, "{}: pack-quantized {}-bit integers are not supported (2, 4 or 8 bits)", name, bits);
  }
  expect_dtype(weight_packed, {DType::kI32, DType::kU32}, name, "weight_packed");
  expect_dtype(weight_scale, {DType::kF32, DType::kF16, DType::kBF16}, name, "weight_scale");
  if (weight_packed.rank() != 2 || weight_scale.rank() != 2 || weight_packed.dim(0) != weight_scale.dim(0)) {
    fail(ErrorKind::kInvalidFile,
         "{}: weight_packed {} and weight_scale {} must be [out, in·bits/32] and [out, groups]", name,
         shape_string(weight_packed.shape()), shape_string(weight_scale.shape()));
  }
  const int64_t rows = weight_packed.dim(0);
  const int64_t cols = weight_packed.dim(1) * 32 / bits;
  const int64_t groups = weight_scale.dim(1);
  if (groups <= 0 || cols % groups != 0 || (cols / groups) % 32 != 0) {
    fail(ErrorKind::kInvalidFile, "{}: {} columns do not split into {} groups of a multiple of 32", name, cols, groups);
  }
  const auto group = static_cast<int>(cols / groups);
  const bool has_zero_point = !weight_zero_point.empty();
  if (has_zero_point) {
    expect_dtype(weight_zero_point, {DType::kI8, DType::kU8, DType::kI32}, name, "weight_zero_point");
    if (weight_zero_point.shape() != weight_scale.shape()) {
      fail(ErrorKind::kInvalidFile, "{}: weight_zero_point {} must match weight_scale {}", name,
           shape_string(weight_zero_point.shape()), shape_string(weight_scale.shape()));
    }
  }
  auto zero_point_at = [&](int64_t i) -> double {
    if (!has_zero_point) return 0.0;
    const auto* base = static_cast<const char*>(weight_zero_point.data());
    switch (weight_zero_point.dtype()) {
      case DType::kI8:
        return static_cast<int8_t>(base[i]);
      case DType::kU8:
        return static_cast<uint8_t>(base[i]);
      default: {
        int32_t v = 0;
        std::memcpy(&v, base + i * 4, 4);
        return v;
      }
    }
  };
  const double half_range = std::ldexp(1.0, bits - 1);
  const int64_t entries = rows * groups;
  Weight out;
  out.rows = rows;
  out.cols = cols;

  // Affine is exact when each bias fits the scale dtype: then scale·u (≤ 8+11 significant bits) and the sum are
  // exact in float32, equal to (u − offset)·s.
  const DType scale_dtype = weight_scale.dtype();
  bool exact = scale_dtype != DType::kF32;
  Tensor biases = Tensor::zeros(scale_dtype, {rows, groups});
  for (int64_t i = 0; exact && i < entries; ++i) {
    const double bias = -(half_range + zero_point_at(i)) * static_cast<double>(float_at(weight_scale, i));
    const auto as_float = static_cast<float>(bias);
    if (static_cast<double>(as_float) != bias) {
      exact = false;
      break;
    }
    const uint16_t code = scale_dtype == DType::kBF16 ? float_to_bf16(as_float) : float_to_f16(as_float);
    const float back = scale_dtype == DType::kBF16 ? bf16_to_float(code) : f16_to_float(code);
    if (back != as_float) exact = false;
    biases.data_as<uint16_t>()[i] = code;
  }
  const Tensor words = copy_bytes(weight_packed, DType::kU32, {rows, cols * bits / 32}, name);
  if (exact) {
    out.quant = QuantSpec{QuantMode::kAffine, bits, group};
    out.values = words;
    out.scales = copy_bytes(weight_scale, scale_dtype, {rows, groups}, name);
    out.biases = biases;
    validate(out, name);
    return out;
  }
  out.quant = QuantSpec{};
  out.values = Tensor::zeros(DType::kF32, {rows, cols});
  float* dst = out.values.data_as<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t g = r * groups + c / group;
      const auto u = static_cast<float>(code_at(words.data_as<uint32_t>() + r * (cols * bits / 32), c, bits));
      const auto offset = static_cast<float>(half_range + zero_point_at(g));
      dst[r * cols + c] = (u - offset) * float_at(weight_scale, g);
    }
  }
  return out;
}

Weight dequantize_block_fp8(const Tensor& weight, const Tensor& weight_scale_inv, int block_rows, int block_cols,
                            std::string_view name) {
  expect_dtype(weight, {DType::kF8E4M3, DType::kU8}, name, "weight");
  expect_dtype(weight_scale_inv, {DType::kF32, DType::kBF16, DType::kF16}, name, "weight_scale_inv");
  if (block_rows <= 0 || block_cols <= 0) {
    fail(ErrorKind::kInvalidFile, "{}: weight_block_size [{}, {}] must be positive", name, block_rows, block_cols);
  }
  if (weight.rank() != 2 || weight_scale_inv.rank() != 2) {
    fail(ErrorKind::kInvalidFile, "{}: weight {} and weight_scale_inv {} must be 2-D", name,
         shape_string(weight.shape()), shape_string(weight_scale_inv.shape()));
  }
  const int64_t rows = weight.dim(0), cols = weight.dim(1);
  const int64_t block_row_count = (rows + block_rows - 1) / block_rows;
  const int64_t block_col_count = (cols + block_cols - 1) / block_cols;
  if (weight_scale_inv.dim(0) != block_row_count || weight_scale_inv.dim(1) != block_col_count) {
    fail(ErrorKind::kInvalidFile, "{}: weight_scale_inv is {}, expected [{}, {}] for weight {} in {}x{} blocks", name,
         shape_string(weight_scale_inv.shape()), block_row_count, block_col_count, shape_string(weight.shape()),
         block_rows, block_cols);
  }
  Weight out;
  out.rows = rows;
  out.cols = cols;
  out.values = Tensor::zeros(DType::kF32, {rows, cols});
  const auto* codes = weight.data_as<uint8_t>();
  float* dst = out.values.data_as<float>();
  std::vector<float> block_scales(static_cast<size_t>(block_col_count));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < block_col_count; ++b) {
      block_scales[static_cast<size_t>(b)] = float_at(weight_scale_inv, (r / block_rows) * block_col_count + b);
    }
    for (int64_t c = 0; c < cols; ++c) {
      dst[r * cols + c] = e4m3_to_float(codes[r * cols + c]) * block_scales[static_cast<size_t>(c / block_cols)];
    }
  }
  return out;
}

}  // namespace loom::weights::quant
