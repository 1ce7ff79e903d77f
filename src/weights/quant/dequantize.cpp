// Dequantizers and the shape/dtype validation they rely on. The loops are specialised per bit width so that the
// benchmark measures something a CPU backend could actually use.
#include <array>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/float_formats.h"
#include "weights/quant/quantize.h"

namespace loom::weights::quant {
namespace {

bool is_float_dtype(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

void expect_shape(const Tensor& tensor, int64_t rows, int64_t cols, std::string_view name, std::string_view role) {
  if (tensor.empty()) fail(ErrorKind::kInvalidFile, "{}: missing {} tensor", name, role);
  if (tensor.rank() != 2 || tensor.dim(0) != rows || tensor.dim(1) != cols) {
    fail(ErrorKind::kInvalidFile, "{}: {} has shape {}, expected [{}, {}]", name, role, shape_string(tensor.shape()),
         rows, cols);
  }
}

// Converts `count` scale or bias entries starting at `index` to float32.
void read_floats(const Tensor& tensor, int64_t index, int64_t count, float* out) {
  switch (tensor.dtype()) {
    case DType::kF32:
      std::memcpy(out, tensor.data_as<float>() + index, static_cast<size_t>(count) * sizeof(float));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < count; ++i) out[i] = bf16_to_float(tensor.data_as<uint16_t>()[index + i]);
      return;
    case DType::kF16:
      for (int64_t i = 0; i < count; ++i) out[i] = f16_to_float(tensor.data_as<uint16_t>()[index + i]);
      return;
    default:
      fail(ErrorKind::kInternal, "float tensor of dtype {}", dtype_name(tensor.dtype()));
  }
}

const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[static_cast<size_t>(i)] = e4m3_to_float(static_cast<uint8_t>(i));
    return t;
  }();
  return table;
}

template <int Bits>
void affine_row(const uint32_t* words, const float* scales, const float* biases, int64_t cols, int group, float* out) {
  constexpr uint32_t kMask = (1u << Bits) - 1u;
  const int64_t groups = cols / group;
  for (int64_t g = 0; g < groups; ++g) {
    const float scale = scales[g], bias = biases[g];
    float* o = out + g * group;
    if constexpr (32 % Bits == 0) {
      constexpr int kPerWord = 32 / Bits;
      const uint32_t* w = words + g * group / kPerWord;
      for (int k = 0; k < group / kPerWord; ++k) {
        const uint32_t word = w[k];
        for (int i = 0; i < kPerWord; ++i) {
          o[k * kPerWord + i] = scale * static_cast<float>((word >> (i * Bits)) & kMask) + bias;
        }
      }
    } else {
      // 32 codes of Bits bits fill exactly Bits words; inside that chunk the shifts are compile-time constants.
      const uint32_t* w = words + g * group / 32 * Bits;
      for (int chunk = 0; chunk < group / 32; ++chunk, w += Bits) {
        for (int i = 0; i < 32; ++i) {
          const int bit = i * Bits;
          uint64_t window = w[bit >> 5] >> (bit & 31);
          if ((bit & 31) + Bits > 32) window |= static_cast<uint64_t>(w[(bit >> 5) + 1]) << (32 - (bit & 31));
          o[chunk * 32 + i] = scale * static_cast<float>(static_cast<uint32_t>(window) & kMask) + bias;
        }
      }
    }
  }
}

using AffineRowFn = void (*)(const uint32_t*, const float*, const float*, int64_t, int, float*);

AffineRowFn affine_row_fn(int bits) {
  switch (bits) {
    case 2:
      return affine_row<2>;
    case 3:
      return affine_row<3>;
    case 4:
      return affine_row<4>;
    case 5:
      return affine_row<5>;
    case 6:
      return affine_row<6>;
    case 8:
      return affine_row<8>;
    default:
      fail(ErrorKind::kInternal, "affine bits {}", bits);
  }
}

void dequantize_affine(const Weight& weight, int64_t row_begin, int64_t row_end, float* out) {
  const int64_t cols = weight.cols;
  const int group = weight.quant.group_size;
  const int64_t groups = cols / group;
  const int64_t words_per_row = cols * weight.quant.bits / 32;
  std::vector<float> scales(static_cast<size_t>(groups)), biases(static_cast<size_t>(groups));
  const AffineRowFn row_fn = affine_row_fn(weight.quant.bits);
  for (int64_t r = row_begin; r < row_end; ++r) {
    read_floats(weight.scales, r * groups, groups, scales.data());
    read_floats(weight.biases, r * groups, groups, biases.data());
    row_fn(weight.values.data_as<uint32_t>() + r * words_per_row, scales.data(), biases.data(), cols, group,
           out + (r - row_begin) * cols);
  }
}

// mxfp4 and nvfp4: E2M1 nibbles, low nibble first; the scale of each group decoded by `decode_scale`.
template <typename DecodeScale>
void dequantize_fp4(const Weight& weight, int64_t row_begin, int64_t row_end, float* out, DecodeScale decode_scale) {
  const int64_t cols = weight.cols;
  const int group = weight.quant.group_size;
  const int64_t groups = cols / group;
  const float tensor_scale = weight.output_scale;
  const auto* scale_bytes = weight.scales.data_as<uint8_t>();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint32_t* words = weight.values.data_as<uint32_t>() + r * (cols / 8);
    float* o = out + (r - row_begin) * cols;
    for (int64_t g = 0; g < groups; ++g) {
      const float scale = decode_scale(scale_bytes[r * groups + g]);
      float table[16];
      for (int i = 0; i < 16; ++i) table[i] = kE2M1Values[i] * scale * tensor_scale;
      for (int k = 0; k < group / 8; ++k) {
        const uint32_t word = words[g * group / 8 + k];
        for (int i = 0; i < 8; ++i) o[g * group + k * 8 + i] = table[(word >> (4 * i)) & 0xFu];
      }
    }
  }
}

void dequantize_mxfp8(const Weight& weight, int64_t row_begin, int64_t row_end, float* out) {
  const int64_t cols = weight.cols;
  const int64_t groups = cols / 32;
  const auto& table = e4m3_table();
  const auto* scale_bytes = weight.scales.data_as<uint8_t>();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint32_t* words = weight.values.data_as<uint32_t>() + r * (cols / 4);
    float* o = out + (r - row_begin) * cols;
    for (int64_t g = 0; g < groups; ++g) {
      const float scale = e8m0_to_float(scale_bytes[r * groups + g]);
      for (int k = 0; k < 8; ++k) {
        const uint32_t word = words[g * 8 + k];
        for (int i = 0; i < 4; ++i) o[g * 32 + k * 4 + i] = table[(word >> (8 * i)) & 0xFFu] * scale;
      }
    }
  }
}

void dequantize_float(const Weight& weight, int64_t row_begin, int64_t row_end, float* out) {
  read_floats(weight.values, row_begin * weight.cols, (row_end - row_begin) * weight.cols, out);
}

}  // namespace

void validate(const Weight& weight, std::string_view name) {
  const QuantSpec& spec = weight.quant;
  if (weight.rows < 0 || weight.cols < 0) {
    fail(ErrorKind::kInvalidFile, "{}: negative shape [{}, {}]", name, weight.rows, weight.cols);
  }
  if (spec.mode == QuantMode::kNone) {
    if (!is_float_dtype(weight.values.dtype())) {
      fail(ErrorKind::kInvalidFile, "{}: a float weight must be F32, F16 or BF16, not {}", name,
           dtype_name(weight.values.dtype()));
    }
    expect_shape(weight.values, weight.rows, weight.cols, name, "weight");
    return;
  }
  const std::string spec_name = quant_spec_name(spec);
  switch (spec.mode) {
    case QuantMode::kAffine:
      if (spec.bits < 2 || spec.bits > 8 || spec.bits == 7) {
        fail(ErrorKind::kInvalidFile, "{}: affine bits must be 2, 3, 4, 5, 6 or 8, got {}", name, spec.bits);
      }
      // A multiple of 32 elements keeps every group on a word boundary for every width.
      if (spec.group_size <= 0 || spec.group_size % 32 != 0) {
        fail(ErrorKind::kInvalidFile, "{}: affine group_size must be a positive multiple of 32, got {}", name,
             spec.group_size);
      }
      break;
    case QuantMode::kMxfp4:
    case QuantMode::kMxfp8:
    case QuantMode::kNvfp4: {
      const int bits = spec.mode == QuantMode::kMxfp8 ? 8 : 4;
      const int group = spec.mode == QuantMode::kNvfp4 ? 16 : 32;
      if (spec.bits != bits || spec.group_size != group) {
        fail(ErrorKind::kInvalidFile, "{}: {} needs bits {} and group_size {}, got bits {} group_size {}", name,
             spec_name, bits, group, spec.bits, spec.group_size);
      }
      break;
    }
    case QuantMode::kNone:
      break;
  }
  if (weight.cols % spec.group_size != 0) {
    fail(ErrorKind::kInvalidFile, "{}: {} columns are not divisible by the group size {}", name, weight.cols,
         spec.group_size);
  }
  if (weight.values.dtype() != DType::kU32) {
    fail(ErrorKind::kInvalidFile, "{}: packed {} weight must be U32, not {}", name, spec_name,
         dtype_name(weight.values.dtype()));
  }
  if (weight.values.rank() != 2 || weight.scales.rank() != 2) {
    fail(ErrorKind::kInvalidFile, "{}: packed weight {} and scales {} must both be 2-D", name,
         shape_string(weight.values.shape()), shape_string(weight.scales.shape()));
  }
  const int64_t unpacked = weight.values.dim(-1) * 32 / spec.bits;
  if (unpacked != weight.scales.dim(-1) * spec.group_size || unpacked != weight.cols) {
    fail(ErrorKind::kInvalidFile,
         "{}: packed weight {} and scales {} disagree for {} ({} bits, group {}): weight.shape[-1]·32/bits = {}, "
         "scales.shape[-1]·group_size = {}, columns = {}",
         name, shape_string(weight.values.shape()), shape_string(weight.scales.shape()), spec_name, spec.bits,
         spec.group_size, unpacked, weight.scales.dim(-1) * spec.group_size, weight.cols);
  }
  expect_shape(weight.values, weight.rows, weight.cols * spec.bits / 32, name, "packed weight");
  expect_shape(weight.scales, weight.rows, weight.cols / spec.group_size, name, "scales");
  const DType scale_dtype = weight.scales.dtype();
  if (spec.mode == QuantMode::kAffine) {
    if (!is_float_dtype(scale_dtype)) {
      fail(ErrorKind::kInvalidFile, "{}: affine scales must be F32, F16 or BF16, not {}", name,
           dtype_name(scale_dtype));
    }
    expect_shape(weight.biases, weight.rows, weight.cols / spec.group_size, name, "biases");
    if (weight.biases.dtype() != scale_dtype) {
      fail(ErrorKind::kInvalidFile, "{}: biases are {} but scales are {}", name, dtype_name(weight.biases.dtype()),
           dtype_name(scale_dtype));
    }
  } else {
    const DType named = spec.mode == QuantMode::kNvfp4 ? DType::kF8E4M3 : DType::kF8E8M0;
    if (scale_dtype != DType::kU8 && scale_dtype != named) {
      fail(ErrorKind::kInvalidFile, "{}: {} scales must be U8 or {}, not {}", name, spec_name, dtype_name(named),
           dtype_name(scale_dtype));
    }
    if (!weight.biases.empty()) fail(ErrorKind::kInvalidFile, "{}: {} has no biases", name, spec_name);
  }
}

void dequantize_rows(const Weight& weight, int64_t row_begin, int64_t row_end, float* out) {
  if (row_begin < 0 || row_end < row_begin || row_end > weight.rows) {
    fail(ErrorKind::kInternal, "dequantize_rows: rows [{}, {}) outside [0, {})", row_begin, row_end, weight.rows);
  }
  for (const Tensor* t : {&weight.values, &weight.scales, &weight.biases}) {
    if (!t->empty() && t->device().kind != DeviceKind::kCpu) {
      fail(ErrorKind::kInternal, "dequantize_rows: tensors must be in host memory");
    }
  }
  switch (weight.quant.mode) {
    case QuantMode::kNone:
      dequantize_float(weight, row_begin, row_end, out);
      return;
    case QuantMode::kAffine:
      dequantize_affine(weight, row_begin, row_end, out);
      return;
    case QuantMode::kMxfp4:
      dequantize_fp4(weight, row_begin, row_end, out, [](uint8_t s) { return e8m0_to_float(s); });
      return;
    case QuantMode::kMxfp8:
      dequantize_mxfp8(weight, row_begin, row_end, out);
      return;
    case QuantMode::kNvfp4: {
      const auto& table = e4m3_table();
      dequantize_fp4(weight, row_begin, row_end, out, [&table](uint8_t s) { return table[s]; });
      return;
    }
  }
}

}  // namespace loom::weights::quant
