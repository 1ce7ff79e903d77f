#pragma once
// Loading a family's weight manifest out of a Snapshot. Each call names one expected tensor by its canonical name
// (weights/tensor_names.h; any naming the files use finds it) and the shape the family expects; the bytes are copied
// out of the memory map into owned tensors, so the model does not depend on the mapping's alignment or lifetime.
//
// - Matrices (Linear, Embedding) become weights::Weight in their stored format: F32/F16/BF16 as stored, or quantized
//   per the snapshot's QuantConfig (MLX layout: `<module>.weight` packed U32, `<module>.scales`, `<module>.biases`).
//   Nothing is dequantized.
// - Vectors and small tables (norm weights, biases, position embeddings) become F32 tensors: the backend's norms and
//   bias adds take F32.
//
// Every problem throws loom::Error(kInvalidFile) naming the file (or snapshot), the tensor, the expected and the found
// shape; a storage format loom cannot load throws kUnsupported naming the tensor.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "weights/snapshot.h"
#include "weights/weight.h"

namespace loom::model {

// Rows [begin, begin + count) of a weight in its stored format (scales and biases follow their rows); rows at or past
// w.rows are zero, which every format decodes to 0. `name` is for messages.
weights::Weight weight_rows(const weights::Weight& w, int64_t begin, int64_t count, std::string_view name);
// Columns [begin, begin + count) of a weight in its stored format. Quantized weights are cut only at whole groups whose
// packed codes start on a 32-bit word; otherwise throws kUnsupported naming `name`, the split and the group size.
weights::Weight weight_cols(const weights::Weight& w, int64_t begin, int64_t count, std::string_view name);

class WeightLoader {
 public:
  explicit WeightLoader(const weights::Snapshot& snapshot) : snapshot_(snapshot) {}

  const weights::Snapshot& snapshot() const { return snapshot_; }
  bool has(std::string_view name) const { return snapshot_.find(name).has_value(); }

  // The first prefix p of `prefixes` for which `p + probe` exists; throws kInvalidFile listing what was tried.
  std::string choose_prefix(std::initializer_list<std::string_view> prefixes, std::string_view probe) const;

  // `<module>.weight` as a logical [rows, cols] matrix (out × in).
  weights::Weight matrix(std::string_view module, int64_t rows, int64_t cols) const;
  // A raw float parameter stored [cols, rows] (in × out, used as x @ W) returned as a Weight [rows, cols] in its
  // stored dtype, transposed once at load so matmul can take it like any Linear.
  weights::Weight matrix_transposed(std::string_view name, int64_t rows, int64_t cols) const;
  // A float parameter stored [count, rows, cols] (a stack of per-expert matrices, transformers' MoE layout) as
  // `count` Weights [rows, cols] in the stored dtype.
  std::vector<weights::Weight> stacked_matrices(std::string_view name, int64_t count, int64_t rows, int64_t cols) const;
  // A Conv2d weight with kernel = stride = `patch`, stored [out, in, p, p] (PyTorch) or [out, p, p, in] (MLX),
  // returned as a Weight [out, in·p·p] in (in, py, px) order, matching backend::extract_patches.
  weights::Weight patch_embedding(std::string_view name, int64_t out, int64_t in, int patch) const;

  // Tensor-parallel shards (model/tensor_parallel.h decides the ranges). Rows [begin, begin + count) of the [rows,
  // cols] matrix `<module>.weight` in its stored format (column-parallel layers, vocab rows of an embedding); rows
  // past the end of the matrix come back zero (a vocabulary shard padded to the common size).
  weights::Weight matrix_rows(std::string_view module, int64_t rows, int64_t cols, int64_t begin, int64_t count) const;
  // Columns [begin, begin + count) (row-parallel layers). A quantized matrix is cut only at whole groups (and whole
  // packed 32-bit words); anything else throws kUnsupported naming the tensor, the split and the group size.
  weights::Weight matrix_cols(std::string_view module, int64_t rows, int64_t cols, int64_t begin, int64_t count) const;
  // Elements [begin, begin + count) of the F32 vector `name` [size] (biases of column-parallel layers).
  Tensor f32_slice(std::string_view name, int64_t size, int64_t begin, int64_t count) const;

  // A float tensor of exactly `shape`, converted to F32. A 2-D `<module>.weight` stored quantized (with
  // `<module>.scales`) is decoded to F32: only small tables (position embeddings) are loaded this way.
  Tensor f32(std::string_view name, const Shape& shape) const;

 private:
  // matrix(), or with `view` a Weight whose tensors borrow the snapshot's bytes (for the slices, which copy only their
  // part: a rank never holds a second whole copy of a matrix).
  weights::Weight stored_matrix(std::string_view module, int64_t rows, int64_t cols, bool view) const;
  // The tensor's reference; throws kInvalidFile naming the snapshot when it is missing.
  weights::TensorRef require(std::string_view name, const Shape& expected) const;
  void check_shape(const weights::TensorRef& ref, std::string_view name, const Shape& expected) const;
  void check_float(const weights::TensorRef& ref, std::string_view name) const;

  const weights::Snapshot& snapshot_;
};

}  // namespace loom::model
