// Embedding gather, matmul against a Weight in its stored format, bias add.
//
// Matmul has two regimes, as on the CPU. Decode (1–16 activation rows) is bound by reading the weight: the fused GEMV
// of linear_kernels.cu reads each weight byte once and accumulates in fp32. Prefill (more rows) is bound by
// arithmetic: cuBLAS sgemm, fed the f32 weight directly or tiles of the weight dequantized to f32 by the same
// decoders. fp32 GEMMs keep the two backends within fp32 rounding of each other; bf16 tensor-core GEMMs come with
// bf16 activations.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/common.h"
#include "backend/cuda/kernels.h"
#include "weights/quant/quantize.h"

namespace loom::backend::cuda {
namespace {

using kernels::Format;
using kernels::WeightView;

// Bytes of f32 weight dequantized per prefill tile: large enough for an efficient GEMM, small next to the card.
constexpr int64_t kTileBytes = int64_t{256} << 20;

int scale_kind(DType dtype) {
  return dtype == DType::kF32 ? 0 : dtype == DType::kF16 ? 1 : 2;
}

Format format_of(const weights::Weight& w, std::string_view op) {
  using weights::QuantMode;
  switch (w.quant.mode) {
    case QuantMode::kNone:
      if (w.cols % 32 != 0) return Format::kFloatAny;
      return w.values.dtype() == DType::kF32   ? Format::kF32
             : w.values.dtype() == DType::kF16 ? Format::kF16
                                               : Format::kBF16;
    case QuantMode::kAffine:
      switch (w.quant.bits) {
        case 2:
          return Format::kAffine2;
        case 3:
          return Format::kAffine3;
        case 4:
          return Format::kAffine4;
        case 5:
          return Format::kAffine5;
        case 6:
          return Format::kAffine6;
        case 8:
          return Format::kAffine8;
        default:
          break;
      }
      break;
    case QuantMode::kMxfp4:
      return Format::kMxfp4;
    case QuantMode::kMxfp8:
      return Format::kMxfp8;
    case QuantMode::kNvfp4:
      return Format::kNvfp4;
  }
  fail(ErrorKind::kUnsupported, "[{}] no CUDA kernel for {}", op, weights::quant_spec_name(w.quant));
}

WeightView make_view(const weights::Weight& w, std::string_view op) {
  for (const Tensor* t : {&w.values, &w.scales, &w.biases}) {
    if (!t->empty() && !on_device(*t)) fail(ErrorKind::kInternal, "[{}] weight tensors are not in device memory", op);
  }
  if (w.values.empty()) fail(ErrorKind::kInternal, "[{}] weight values are empty", op);
  WeightView v;
  v.values = static_cast<const uint8_t*>(w.values.data());
  v.scales = w.scales.empty() ? nullptr : w.scales.data();
  v.biases = w.biases.empty() ? nullptr : w.biases.data();
  v.rows = w.rows;
  v.cols = w.cols;
  v.output_scale = w.output_scale;
  if (w.quant.mode == weights::QuantMode::kNone) {
    const DType dtype = w.values.dtype();
    if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) {
      fail(ErrorKind::kUnsupported, "[{}] no CUDA kernel for float weights stored as {}", op, dtype_name(dtype));
    }
    if (w.values.shape() != Shape{w.rows, w.cols}) {
      fail(ErrorKind::kInternal, "[{}] weight values have shape {}, expected [{}, {}]", op,
           shape_string(w.values.shape()), w.rows, w.cols);
    }
    v.row_bytes = w.cols * (dtype_bits(dtype) / 8);
    v.scale_kind = scale_kind(dtype);
    return v;
  }
  try {
    weights::quant::validate(w, "weight");
  } catch (const Error& e) {
    fail(ErrorKind::kInternal, "[{}] {}", op, e.what());
  }
  v.row_bytes = w.cols * w.quant.bits / 8;
  v.group_size = w.quant.group_size;
  v.groups = w.cols / w.quant.group_size;
  if (!w.scales.empty()) v.scale_kind = scale_kind(w.scales.dtype());
  return v;
}

}  // namespace

void CudaBackend::embedding(const weights::Weight& table, std::span<const int32_t> ids, float scale, Tensor& out) {
  const WeightView view = make_view(table, "embedding");
  const Format format = format_of(table, "embedding");
  expect_f32(out, "embedding", "out");
  expect_shape(out, {static_cast<int64_t>(ids.size()), table.cols}, "embedding", "out");
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] < 0 || ids[t] >= table.rows) {
      fail(ErrorKind::kInvalidRequest, "[embedding] token id {} outside the vocabulary of {}", ids[t], table.rows);
    }
  }
  if (ids.empty() || table.cols == 0) return;
  const int32_t* device_ids = nullptr;
  const Batch* bound = state_->step.batch;
  if (bound != nullptr && std::ranges::equal(ids, bound->token_ids)) {
    device_ids = state_->step.ids;  // the bound step's ids (or a copy the family made of them), uploaded once
  } else {
    MetaUpload meta;
    const size_t offset = meta.add(ids);
    device_ids = at<int32_t>(meta.commit(state_->meta), offset);
  }
  kernels::dequantize(state_->stream, view, format, device_ids, 0, static_cast<int64_t>(ids.size()), scale,
                      out.data_as<float>());
  check_launch("embedding");
}

void CudaBackend::embedding_shard(const weights::Weight& table, std::span<const int32_t> ids, int64_t first_id,
                                  float scale, Tensor& out) {
  const WeightView view = make_view(table, "embedding_shard");
  const Format format = format_of(table, "embedding_shard");
  expect_f32(out, "embedding_shard", "out");
  expect_shape(out, {static_cast<int64_t>(ids.size()), table.cols}, "embedding_shard", "out");
  if (ids.empty() || table.cols == 0) return;
  // Ids outside this rank's rows decode row 0 (any valid row) and are then zeroed.
  std::vector<int32_t> local(ids.size()), keep(ids.size());
  for (size_t t = 0; t < ids.size(); ++t) {
    const int64_t row = ids[t] - first_id;
    keep[t] = row >= 0 && row < table.rows ? 1 : 0;
    local[t] = keep[t] != 0 ? static_cast<int32_t>(row) : 0;
  }
  if (table.rows == 0) {
    LOOM_CUDA(cudaMemsetAsync(out.data(), 0, out.bytes(), state_->stream));
    return;
  }
  MetaUpload meta;
  const size_t local_offset = meta.add(std::span<const int32_t>(local));
  const size_t keep_offset = meta.add(std::span<const int32_t>(keep));
  const uint8_t* base = meta.commit(state_->meta);
  const auto count = static_cast<int64_t>(ids.size());
  kernels::dequantize(state_->stream, view, format, at<int32_t>(base, local_offset), 0, count, scale,
                      out.data_as<float>());
  kernels::zero_rows(state_->stream, out.data_as<float>(), at<int32_t>(base, keep_offset), count, table.cols);
  check_launch("embedding_shard");
}

void CudaBackend::matmul(const Tensor& x, const weights::Weight& w, Tensor& out) {
  const WeightView view = make_view(w, "matmul");
  const Format format = format_of(w, "matmul");
  expect_f32(x, "matmul", "x");
  expect_f32(out, "matmul", "out");
  if (last_dim(x) != w.cols) {
    fail(ErrorKind::kInternal, "[matmul] x has shape {} but the weight is [{}, {}]", shape_string(x.shape()), w.rows,
         w.cols);
  }
  const int64_t n = w.cols == 0 ? 0 : x.elements() / w.cols;
  if (out.elements() != n * w.rows || last_dim(out) != w.rows) {
    fail(ErrorKind::kInternal, "[matmul] out has shape {}, expected [{}, {}]", shape_string(out.shape()), n, w.rows);
  }
  if (n == 0 || w.rows == 0) return;
  const float* xs = x.data_as<float>();
  float* ys = out.data_as<float>();
  if (n <= kernels::kGemvMaxRows) {
    if (format != Format::kFloatAny && reinterpret_cast<uintptr_t>(xs) % 16 != 0) {
      fail(ErrorKind::kInternal, "[matmul] x must be 16-byte aligned for the GEMV");
    }
    kernels::gemv(state_->stream, view, format, xs, static_cast<int>(n), state_->multiprocessors, ys);
    check_launch("matmul");
    return;
  }
  // Row-major out[n, rows] = x[n, cols] · W[rows, cols]ᵀ is column-major outᵀ = W(as cols×rows)ᵀ · x(as cols×n).
  const float one = 1.0f, zero = 0.0f;
  const auto sgemm = [&](const float* weight_rows, int64_t rows, float* c) {
    LOOM_CUBLAS(cublasSgemm(state_->cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(n),
                            static_cast<int>(w.cols), &one, weight_rows, static_cast<int>(w.cols), xs,
                            static_cast<int>(w.cols), &zero, c, static_cast<int>(w.rows)));
  };
  if (format == Format::kF32 || (format == Format::kFloatAny && w.values.dtype() == DType::kF32)) {
    sgemm(w.values.data_as<float>(), w.rows, ys);
    return;
  }
  const int64_t tile_rows = std::clamp<int64_t>(kTileBytes / (4 * w.cols), 1, w.rows);
  auto* tile = static_cast<float*>(state_->tile.reserve(static_cast<size_t>(tile_rows * w.cols) * sizeof(float)));
  for (int64_t r0 = 0; r0 < w.rows; r0 += tile_rows) {
    const int64_t rows = std::min(tile_rows, w.rows - r0);
    kernels::dequantize(state_->stream, view, format, nullptr, r0, rows, 1.0f, tile);
    check_launch("matmul");
    sgemm(tile, rows, ys + r0);
  }
}

void CudaBackend::add_bias(Tensor& x, const Tensor& bias) {
  expect_f32(x, "add_bias", "x");
  expect_f32(bias, "add_bias", "bias");
  const int64_t cols = last_dim(x);
  expect_shape(bias, {cols}, "add_bias", "bias");
  const int64_t rows = cols == 0 ? 0 : x.elements() / cols;
  kernels::add_bias(state_->stream, x.data_as<float>(), bias.data_as<float>(), rows, cols);
  check_launch("add_bias");
}

}  // namespace loom::backend::cuda
