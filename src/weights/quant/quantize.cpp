#include "weights/quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "weights/quant/bit_packing.h"

namespace loom::weights::quant {
namespace {

void check_finite(const float* w, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(row[c])) {
        fail(ErrorKind::kInvalidRequest, "quantize: row {} column {} is {}; only finite weights can be quantized", r, c,
             row[c]);
      }
    }
  }
}

void check_spec(const QuantSpec& spec, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) fail(ErrorKind::kInvalidRequest, "quantize: negative shape [{}, {}]", rows, cols);
  switch (spec.mode) {
    case QuantMode::kAffine: {
      const int b = spec.bits;
      if (b < 2 || b > 8 || b == 7) {
        fail(ErrorKind::kInvalidRequest, "quantize: affine bits must be 2, 3, 4, 5, 6 or 8, got {}", b);
      }
      if (spec.group_size != 32 && spec.group_size != 64 && spec.group_size != 128) {
        fail(ErrorKind::kInvalidRequest, "quantize: affine group_size must be 32, 64 or 128, got {}", spec.group_size);
      }
      break;
    }
    case QuantMode::kMxfp4:
    case QuantMode::kMxfp8:
    case QuantMode::kNvfp4: {
      const int bits = spec.mode == QuantMode::kMxfp8 ? 8 : 4;
      const int group = spec.mode == QuantMode::kNvfp4 ? 16 : 32;
      if (spec.bits != bits || spec.group_size != group) {
        fail(ErrorKind::kInvalidRequest, "quantize: {} needs bits {} and group_size {}, got bits {} group_size {}",
             quant_spec_name(spec), bits, group, spec.bits, spec.group_size);
      }
      break;
    }
    case QuantMode::kNone:
      fail(ErrorKind::kInvalidRequest, "quantize: no quantization mode given");
  }
  if (cols % spec.group_size != 0) {
    fail(ErrorKind::kInvalidRequest, "quantize: {} columns are not divisible by the group size {}", cols,
         spec.group_size);
  }
}

void store_scale(Tensor& tensor, int64_t index, float value) {
  switch (tensor.dtype()) {
    case DType::kF32:
      tensor.data_as<float>()[index] = value;
      return;
    case DType::kBF16:
      tensor.data_as<uint16_t>()[index] = float_to_bf16(value);
      return;
    case DType::kF16:
      tensor.data_as<uint16_t>()[index] = float_to_f16(value);
      return;
    default:
      fail(ErrorKind::kInvalidRequest, "quantize: affine scales must be F32, F16 or BF16, not {}",
           dtype_name(tensor.dtype()));
  }
}

// MLX's affine quantizer for one group, everything in float32 (see quantize.h).
void affine_group(const float* w, int group, int bits, uint8_t* codes, float& scale_out, float& bias_out) {
  const auto n_bins = static_cast<float>((1 << bits) - 1);
  float w_min = w[0], w_max = w[0];
  for (int j = 1; j < group; ++j) {
    w_min = std::min(w_min, w[j]);
    w_max = std::max(w_max, w[j]);
  }
  const bool min_dominates = std::fabs(w_min) > std::fabs(w_max);
  float scale = std::max((w_max - w_min) / n_bins, 1e-7f);
  scale = min_dominates ? scale : -scale;
  const float edge = min_dominates ? w_min : w_max;
  const float q0 = std::rint(edge / scale);
  float bias = 0.0f;
  if (q0 != 0.0f) {
    scale = edge / q0;
    bias = edge;
  }
  for (int j = 0; j < group; ++j) {
    const float q = std::clamp(std::rint((w[j] - bias) / scale), 0.0f, n_bins);
    codes[j] = static_cast<uint8_t>(q);
  }
  scale_out = scale;
  bias_out = bias;
}

float group_amax(const float* w, int group) {
  float amax = 0.0f;
  for (int j = 0; j < group; ++j) amax = std::max(amax, std::fabs(w[j]));
  return amax;
}

Weight empty_weight(int64_t rows, int64_t cols, const QuantSpec& spec, DType scale_dtype) {
  Weight weight;
  weight.rows = rows;
  weight.cols = cols;
  weight.quant = spec;
  weight.values = Tensor::zeros(DType::kU32, {rows, cols * spec.bits / 32});
  weight.scales = Tensor::zeros(scale_dtype, {rows, cols / spec.group_size});
  if (spec.mode == QuantMode::kAffine) weight.biases = Tensor::zeros(scale_dtype, {rows, cols / spec.group_size});
  return weight;
}

Weight quantize_fp(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                   std::optional<float> global_scale) {
  Weight weight = empty_weight(rows, cols, spec, DType::kU8);
  const int group = spec.group_size;
  const int64_t groups = cols / group;
  const float max_code = spec.mode == QuantMode::kMxfp8 ? 448.0f : 6.0f;
  const float tensor_scale = global_scale ? *global_scale / 2688.0f : 1.0f;
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  auto* scales = weight.scales.data_as<uint8_t>();
  auto* words = weight.values.data_as<uint32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = row + g * group;
      uint8_t* q = codes.data() + g * group;
      const float amax = group_amax(x, group);
      uint8_t scale = 0;
      float divisor = 0.0f;
      if (spec.mode == QuantMode::kNvfp4) {
        scale = global_scale ? float_to_e4m3((amax / 6.0f) / tensor_scale) : float_to_e4m3(amax / 6.0f);
        divisor = global_scale ? e4m3_to_float(scale) * tensor_scale : e4m3_to_float(scale);
      } else {
        scale = float_to_e8m0(amax / max_code);
        divisor = e8m0_to_float(scale);
      }
      scales[r * groups + g] = scale;
      for (int j = 0; j < group; ++j) {
        if (spec.mode == QuantMode::kMxfp8) {
          q[j] = float_to_e4m3(x[j] / divisor);
        } else {
          q[j] = divisor == 0.0f ? 0 : float_to_e2m1(x[j] / divisor);
        }
      }
    }
    pack_bits(codes.data(), cols, spec.bits, words + r * (cols * spec.bits / 32));
  }
  weight.output_scale = tensor_scale;
  return weight;
}

}  // namespace

float absolute_max(const float* w, int64_t rows, int64_t cols) {
  check_finite(w, rows, cols);
  float amax = 0.0f;
  for (int64_t i = 0; i < rows * cols; ++i) amax = std::max(amax, std::fabs(w[i]));
  return amax;
}

Weight quantize(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec, DType scale_dtype) {
  check_spec(spec, rows, cols);
  check_finite(w, rows, cols);
  if (spec.mode != QuantMode::kAffine) return quantize_fp(w, rows, cols, spec, std::nullopt);
  if (scale_dtype != DType::kF32 && scale_dtype != DType::kF16 && scale_dtype != DType::kBF16) {
    fail(ErrorKind::kInvalidRequest, "quantize: affine scales must be F32, F16 or BF16, not {}",
         dtype_name(scale_dtype));
  }
  Weight weight = empty_weight(rows, cols, spec, scale_dtype);
  const int group = spec.group_size;
  const int64_t groups = cols / group;
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  auto* words = weight.values.data_as<uint32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      float scale = 0.0f, bias = 0.0f;
      affine_group(w + r * cols + g * group, group, spec.bits, codes.data() + g * group, scale, bias);
      store_scale(weight.scales, r * groups + g, scale);
      store_scale(weight.biases, r * groups + g, bias);
    }
    pack_bits(codes.data(), cols, spec.bits, words + r * (cols * spec.bits / 32));
  }
  return weight;
}

Weight quantize_nvfp4(const float* w, int64_t rows, int64_t cols, std::optional<float> global_scale) {
  const QuantSpec spec{QuantMode::kNvfp4, 4, 16};
  check_spec(spec, rows, cols);
  check_finite(w, rows, cols);
  if (global_scale && !(std::isfinite(*global_scale) && *global_scale > 0.0f)) {
    fail(ErrorKind::kInvalidRequest, "quantize: the nvfp4 global scale must be finite and positive, got {}",
         *global_scale);
  }
  return quantize_fp(w, rows, cols, spec, global_scale);
}

}  // namespace loom::weights::quant
