#pragma once
// Turns a float snapshot (F32, F16 or BF16) into an MLX-layout quantized snapshot, as `mlx_lm.convert -q` /
// `mlx_vlm.convert -q` would: the Linear and Embedding weights chosen by quantize_policy.h become packed U32 `weight`
// with `scales` (and, for affine, `biases`) beside it; every other tensor is copied byte for byte; config.json gains
// `quantization` and `quantization_config`; every other file of the snapshot is copied unchanged.
//
// Tensor names keep the source snapshot's spelling (a Hub-named snapshot stays Hub-named). Weights are rounded to
// bf16 first (MLX converts to bf16 before quantizing), so affine scales and biases are BF16; the quantized bytes are
// those of quant::quantize(), MLX's CPU algorithm bit for bit. No per-module overrides are written: loom and MLX both
// treat a Linear/Embedding as quantized iff its `<module>.scales` exists, so the towers left in float need none.
//
// The output is written into a temporary folder beside `out` and renamed into place at the end: a failure leaves
// nothing half-written, and the input is never modified.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "weights/weight.h"

namespace loom::weights {

struct QuantizeProgress {
  int64_t tensors_done = 0;
  int64_t tensors_total = 0;
  uint64_t bytes_done = 0;  // source tensor bytes processed so far
  uint64_t bytes_total = 0;
  std::string_view tensor = {};  // the tensor just finished (source name)
};

struct SnapshotQuantizeOptions {
  QuantSpec spec = {};  // a valid quantized spec (resolve_quant_spec)
  bool force = false;   // replace a non-empty `out`
  // Output files are cut at this many bytes of tensor data (mlx-lm's 5 GiB); one file is written as
  // model.safetensors, several as model-0000K-of-0000N.safetensors with model.safetensors.index.json.
  uint64_t max_shard_bytes = uint64_t{5} << 30;
  std::function<void(const QuantizeProgress&)> progress = {};  // called after each source tensor
};

struct SnapshotQuantizeResult {
  int64_t tensors_quantized = 0;   // source weights turned into weight/scales(/biases)
  int64_t tensors_kept = 0;        // source tensors copied unchanged
  uint64_t bytes_before = 0;       // tensor data in the source snapshot
  uint64_t bytes_after = 0;        // tensor data written
  std::vector<std::string> files;  // safetensors files written, in order
  int64_t files_copied = 0;        // other files copied (config.json not counted)
};

// Throws kInvalidRequest when `out` exists and is not empty (unless options.force), when `out` is, contains or lies
// inside `model`, when the snapshot is already quantized, or when a weight to quantize holds NaN/Inf (naming the
// tensor, row and column); kUnsupported for a weight to quantize that is not F32/F16/BF16; Snapshot::open's errors
// for a malformed input.
SnapshotQuantizeResult quantize_snapshot(const std::filesystem::path& model, const std::filesystem::path& out,
                                         const SnapshotQuantizeOptions& options);

}  // namespace loom::weights
