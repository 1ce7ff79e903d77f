#pragma once
// Row moves between tensors that may live in host or backend memory, written only with Backend::copy and the
// backend's elementwise ops, so the families' gathers and scatters (last rows for the logits, MoE expert rows, image
// rows, Gemma 4's per-layer slices) run unchanged on every backend. Each row is one copy or op: meant for the few rows
// of a step, not for bulk data.

#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "core/tensor.h"

namespace loom::model {

// dst rows [dst_row, dst_row + count) = src rows [src_row, src_row + count) (first axis; same row width).
void copy_rows(backend::Backend& backend, const Tensor& src, int64_t src_row, Tensor& dst, int64_t dst_row,
               int64_t count = 1);

// Every element of t (F32, backend or host memory) set to +0 by a copy from host zeros.
void fill_zero(backend::Backend& backend, Tensor& t);

// out row i = src row rows[i]; out [rows.size(), width].
void gather_rows(backend::Backend& backend, const Tensor& src, std::span<const int64_t> rows, Tensor& out);

// out row rows[i] += src row i · weights[i], in the order of i (the product is rounded before the sum, as
// `dst += src · w` on the host). `product` is a buffer of src's shape.
void scatter_add_rows(backend::Backend& backend, const Tensor& src, std::span<const int64_t> rows,
                      std::span<const float> weights, Tensor& product, Tensor& out);

}  // namespace loom::model
