#include "model/row_ops.h"

#include "core/error.h"
#include "model/layers.h"

namespace loom::model {

void copy_rows(backend::Backend& backend, const Tensor& src, int64_t src_row, Tensor& dst, int64_t dst_row,
               int64_t count) {
  Tensor target = row_block(dst, dst_row, count);
  backend.copy(row_block(src, src_row, count), target);
}

void fill_zero(backend::Backend& backend, Tensor& t) {
  if (t.elements() == 0) return;
  const Tensor zeros = Tensor::zeros(t.dtype(), t.shape());
  backend.copy(zeros, t);
}

void gather_rows(backend::Backend& backend, const Tensor& src, std::span<const int64_t> rows, Tensor& out) {
  if (out.rank() < 1 || out.dim(0) != static_cast<int64_t>(rows.size())) {
    fail(ErrorKind::kInternal, "[gather_rows] {} rows into a tensor of shape {}", rows.size(),
         shape_string(out.shape()));
  }
  for (size_t i = 0; i < rows.size(); ++i) copy_rows(backend, src, rows[i], out, static_cast<int64_t>(i));
}

void scatter_add_rows(backend::Backend& backend, const Tensor& src, std::span<const int64_t> rows,
                      std::span<const float> weights, Tensor& product, Tensor& out) {
  if (rows.size() != weights.size() || src.rank() < 1 || src.dim(0) != static_cast<int64_t>(rows.size()) ||
      product.shape() != src.shape()) {
    fail(ErrorKind::kInternal, "[scatter_add_rows] {} rows, {} weights, src {}, product {}", rows.size(),
         weights.size(), shape_string(src.shape()), shape_string(product.shape()));
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto r = static_cast<int64_t>(i);
    Tensor p = row_block(product, r, 1);
    backend.scale(row_block(src, r, 1), weights[i], p);
    Tensor target = row_block(out, rows[i], 1);
    backend.add(target, p, target);
  }
}

}  // namespace loom::model
