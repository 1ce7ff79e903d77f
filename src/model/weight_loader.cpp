#include "model/weight_loader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "weights/quant/quantize.h"

namespace loom::model {
namespace {

bool is_float(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

std::string stored_name(const weights::TensorRef& ref) {
  return ref.info->name;
}

// Copies element (src index → dst index) of `elem` bytes each; both tensors share a dtype.
template <typename IndexMap>
void permute_elements(const Tensor& src, Tensor& dst, int64_t count, IndexMap&& dst_index_of) {
  const size_t elem = static_cast<size_t>(dtype_bits(src.dtype()) / 8);
  const auto* in = static_cast<const unsigned char*>(src.data());
  auto* out = static_cast<unsigned char*>(dst.data());
  for (int64_t i = 0; i < count; ++i) {
    std::memcpy(out + static_cast<size_t>(dst_index_of(i)) * elem, in + static_cast<size_t>(i) * elem, elem);
  }
}

size_t element_bytes(const Tensor& t) {
  return static_cast<size_t>(dtype_bits(t.dtype()) / 8);
}

// Rows [begin, begin + count) of a [rows, …] tensor (any dtype), zero past its last row.
Tensor tensor_rows(const Tensor& t, int64_t begin, int64_t count) {
  if (t.empty()) return t;
  Shape shape = t.shape();
  const int64_t rows = shape[0];
  shape[0] = count;
  Tensor out = Tensor::zeros(t.dtype(), shape);
  const size_t row_bytes = rows == 0 ? 0 : t.bytes() / static_cast<size_t>(rows);
  const int64_t copied = std::clamp<int64_t>(rows - begin, 0, count);
  if (copied > 0) {
    std::memcpy(out.data(), static_cast<const unsigned char*>(t.data()) + static_cast<size_t>(begin) * row_bytes,
                static_cast<size_t>(copied) * row_bytes);
  }
  return out;
}

// Columns [begin, begin + count) of a 2-D tensor (any dtype).
Tensor tensor_cols(const Tensor& t, int64_t begin, int64_t count) {
  if (t.empty()) return t;
  const int64_t rows = t.dim(0), cols = t.dim(1);
  Tensor out = Tensor::zeros(t.dtype(), {rows, count});
  const size_t elem = element_bytes(t);
  const auto* in = static_cast<const unsigned char*>(t.data());
  auto* dst = static_cast<unsigned char*>(out.data());
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + static_cast<size_t>(r * count) * elem, in + static_cast<size_t>(r * cols + begin) * elem,
                static_cast<size_t>(count) * elem);
  }
  return out;
}

}  // namespace

weights::Weight weight_rows(const weights::Weight& w, int64_t begin, int64_t count, std::string_view name) {
  if (begin < 0 || count < 0 || begin > w.rows) {
    fail(ErrorKind::kInternal, "{}: rows [{}, {}) of a matrix of {} rows", name, begin, begin + count, w.rows);
  }
  weights::Weight out = w;
  out.rows = count;
  out.values = tensor_rows(w.values, begin, count);
  out.scales = tensor_rows(w.scales, begin, count);
  out.biases = tensor_rows(w.biases, begin, count);
  return out;
}

weights::Weight weight_cols(const weights::Weight& w, int64_t begin, int64_t count, std::string_view name) {
  if (begin < 0 || count < 0 || begin + count > w.cols) {
    fail(ErrorKind::kInternal, "{}: columns [{}, {}) of a matrix of {} columns", name, begin, begin + count, w.cols);
  }
  weights::Weight out = w;
  out.cols = count;
  if (w.quant.mode == weights::QuantMode::kNone) {
    out.values = tensor_cols(w.values, begin, count);
    return out;
  }
  const int g = w.quant.group_size, bits = w.quant.bits;
  if (g <= 0 || begin % g != 0 || count % g != 0 || (begin * bits) % 32 != 0 || (count * bits) % 32 != 0) {
    fail(ErrorKind::kUnsupported,
         "{}: cannot split columns [{}, {}) of a {} weight of {} columns: tensor-parallel cuts of a quantized matrix "
         "must fall on whole groups of {} columns (and whole 32-bit words of packed codes)",
         name, begin, begin + count, weights::quant_spec_name(w.quant), w.cols, g);
  }
  out.values = tensor_cols(w.values, begin * bits / 32, count * bits / 32);
  out.scales = tensor_cols(w.scales, begin / g, count / g);
  out.biases = tensor_cols(w.biases, begin / g, count / g);
  return out;
}

weights::Weight WeightLoader::matrix_rows(std::string_view module, int64_t rows, int64_t cols, int64_t begin,
                                          int64_t count) const {
  return weight_rows(stored_matrix(module, rows, cols, true), begin, count, module);
}

weights::Weight WeightLoader::matrix_cols(std::string_view module, int64_t rows, int64_t cols, int64_t begin,
                                          int64_t count) const {
  return weight_cols(stored_matrix(module, rows, cols, true), begin, count, module);
}

Tensor WeightLoader::f32_slice(std::string_view name, int64_t size, int64_t begin, int64_t count) const {
  const Tensor whole = f32(name, {size});
  if (begin < 0 || count < 0 || begin + count > size) {
    fail(ErrorKind::kInternal, "{}: elements [{}, {}) of a vector of {}", name, begin, begin + count, size);
  }
  Tensor out = Tensor::zeros(DType::kF32, {count});
  std::copy_n(whole.data_as<float>() + begin, count, out.data_as<float>());
  return out;
}

std::string WeightLoader::choose_prefix(std::initializer_list<std::string_view> prefixes,
                                        std::string_view probe) const {
  std::string tried;
  for (std::string_view prefix : prefixes) {
    std::string name = std::string(prefix) + std::string(probe);
    if (has(name)) return std::string(prefix);
    tried += (tried.empty() ? "" : ", ") + name;
  }
  fail(ErrorKind::kInvalidFile, "{}: missing tensor {} (looked for {})", snapshot_.dir().string(), probe, tried);
}

weights::TensorRef WeightLoader::require(std::string_view name, const Shape& expected) const {
  const auto ref = snapshot_.find(name);
  if (!ref) {
    fail(ErrorKind::kInvalidFile, "{}: missing tensor {} (expected shape {})", snapshot_.dir().string(), name,
         shape_string(expected));
  }
  return *ref;
}

void WeightLoader::check_shape(const weights::TensorRef& ref, std::string_view name, const Shape& expected) const {
  if (ref.info->shape != expected) {
    fail(ErrorKind::kInvalidFile, "{}: tensor {} ({}) has shape {}, expected {}", ref.file->path().string(), name,
         stored_name(ref), shape_string(ref.info->shape), shape_string(expected));
  }
}

void WeightLoader::check_float(const weights::TensorRef& ref, std::string_view name) const {
  if (!is_float(ref.info->dtype)) {
    fail(ErrorKind::kUnsupported, "{}: tensor {} ({}) is stored as {}; expected F32, F16 or BF16 here",
         ref.file->path().string(), name, stored_name(ref), dtype_name(ref.info->dtype));
  }
}

weights::Weight WeightLoader::matrix(std::string_view module, int64_t rows, int64_t cols) const {
  return stored_matrix(module, rows, cols, false);
}

weights::Weight WeightLoader::stored_matrix(std::string_view module, int64_t rows, int64_t cols, bool view) const {
  // A view borrows the mapping's bytes (read only, possibly unaligned): only for slicing, which copies them at once.
  const auto read = [view](const weights::TensorRef& ref) {
    if (!view) return ref.file->to_tensor(ref.info->name);
    const std::span<const std::byte> bytes = ref.file->bytes(ref.info->name);
    return Tensor::borrow(ref.info->dtype, ref.info->shape, const_cast<std::byte*>(bytes.data()));
  };
  const std::string name = std::string(module) + ".weight";
  const std::string scales_name = std::string(module) + ".scales";
  const weights::QuantConfig& qc = snapshot_.quant_config();
  if (qc.source == weights::QuantConfig::Source::kHuggingFace &&
      (has(std::string(module) + ".weight_scale") || has(std::string(module) + ".weight_packed") ||
       has(std::string(module) + ".weight_scale_inv"))) {
    fail(ErrorKind::kUnsupported,
         "{}: {} is stored in the Hugging Face '{}' quantized layout, which the model loader "
         "does not read yet",
         snapshot_.dir().string(), module, qc.hf ? qc.hf->method : "");
  }
  const weights::QuantSpec spec = qc.spec_for(module, has(scales_name));

  weights::Weight w;
  w.rows = rows;
  w.cols = cols;
  w.quant = spec;
  if (spec.mode == weights::QuantMode::kNone) {
    const weights::TensorRef ref = require(name, {rows, cols});
    check_float(ref, name);
    check_shape(ref, name, {rows, cols});
    w.values = read(ref);
    return w;
  }

  // Quantized: packed codes, one scale (and for affine one bias) per group of a row.
  if (spec.bits <= 0 || spec.group_size <= 0 || (cols * spec.bits) % 32 != 0 || cols % spec.group_size != 0) {
    fail(ErrorKind::kInvalidFile, "{}: {} is quantized as {} but its {} columns do not divide into that format",
         snapshot_.dir().string(), module, weights::quant_spec_name(spec), cols);
  }
  const Shape packed{rows, cols * spec.bits / 32};
  const Shape grouped{rows, cols / spec.group_size};
  const weights::TensorRef values = require(name, packed);
  check_shape(values, name, packed);
  if (values.info->dtype != DType::kU32) {
    fail(ErrorKind::kInvalidFile, "{}: quantized tensor {} is stored as {}, expected U32 packed codes",
         values.file->path().string(), name, dtype_name(values.info->dtype));
  }
  w.values = read(values);
  const weights::TensorRef scales = require(scales_name, grouped);
  check_shape(scales, scales_name, grouped);
  w.scales = read(scales);
  if (spec.mode == weights::QuantMode::kAffine) {
    const std::string biases_name = std::string(module) + ".biases";
    const weights::TensorRef biases = require(biases_name, grouped);
    check_shape(biases, biases_name, grouped);
    w.biases = read(biases);
  }
  weights::quant::validate(w, fmt::format("{}: {}", values.file->path().string(), name));
  return w;
}

weights::Weight WeightLoader::matrix_transposed(std::string_view name, int64_t rows, int64_t cols) const {
  const weights::TensorRef ref = require(name, {cols, rows});
  check_float(ref, name);
  check_shape(ref, name, {cols, rows});
  const Tensor stored = ref.file->to_tensor(ref.info->name);
  weights::Weight w;
  w.rows = rows;
  w.cols = cols;
  w.values = Tensor::zeros(stored.dtype(), {rows, cols});
  // stored[i, o] → values[o, i]
  permute_elements(stored, w.values, rows * cols, [&](int64_t s) { return (s % rows) * cols + s / rows; });
  return w;
}

std::vector<weights::Weight> WeightLoader::stacked_matrices(std::string_view name, int64_t count, int64_t rows,
                                                            int64_t cols) const {
  const Shape shape{count, rows, cols};
  const weights::TensorRef ref = require(name, shape);
  check_float(ref, name);
  check_shape(ref, name, shape);
  const Tensor stored = ref.file->to_tensor(ref.info->name);
  const size_t bytes = static_cast<size_t>(rows * cols) * static_cast<size_t>(dtype_bits(stored.dtype()) / 8);
  std::vector<weights::Weight> out;
  for (int64_t i = 0; i < count; ++i) {
    weights::Weight w;
    w.rows = rows;
    w.cols = cols;
    w.values = Tensor::zeros(stored.dtype(), {rows, cols});
    std::memcpy(w.values.data(), static_cast<const unsigned char*>(stored.data()) + static_cast<size_t>(i) * bytes,
                bytes);
    out.push_back(std::move(w));
  }
  return out;
}

weights::Weight WeightLoader::patch_embedding(std::string_view name, int64_t out, int64_t in, int patch) const {
  const Shape torch_layout{out, in, patch, patch};
  const Shape mlx_layout{out, patch, patch, in};
  const weights::TensorRef ref = require(name, torch_layout);
  check_float(ref, name);
  const bool is_torch = ref.info->shape == torch_layout;
  if (!is_torch && ref.info->shape != mlx_layout) {
    fail(ErrorKind::kInvalidFile, "{}: tensor {} ({}) has shape {}, expected {} (or {} channels-last)",
         ref.file->path().string(), name, stored_name(ref), shape_string(ref.info->shape), shape_string(torch_layout),
         shape_string(mlx_layout));
  }
  Tensor stored = ref.file->to_tensor(ref.info->name);
  weights::Weight w;
  w.rows = out;
  w.cols = in * patch * patch;
  if (is_torch) {
    w.values = stored.reshaped({w.rows, w.cols});
    return w;
  }
  // [o, py, px, c] → [o, c, py, px]
  w.values = Tensor::zeros(stored.dtype(), {w.rows, w.cols});
  const int64_t p = patch;
  permute_elements(stored, w.values, out * w.cols, [&](int64_t s) {
    const int64_t c = s % in, px = (s / in) % p, py = (s / (in * p)) % p, o = s / (in * p * p);
    return o * w.cols + (c * p + py) * p + px;
  });
  return w;
}

Tensor WeightLoader::f32(std::string_view name, const Shape& shape) const {
  // A quantized table (an MLX-quantized nn.Embedding such as a position embedding) is small enough to decode once.
  if (name.ends_with(".weight") && shape.size() == 2) {
    const std::string_view module = name.substr(0, name.size() - std::string_view(".weight").size());
    if (has(std::string(module) + ".scales")) {
      const weights::Weight w = matrix(module, shape[0], shape[1]);
      Tensor out = Tensor::zeros(DType::kF32, shape);
      weights::quant::dequantize_rows(w, 0, w.rows, out.data_as<float>());
      return out;
    }
  }
  const weights::TensorRef ref = require(name, shape);
  check_float(ref, name);
  check_shape(ref, name, shape);
  return ref.file->read_f32(ref.info->name);
}

}  // namespace loom::model
