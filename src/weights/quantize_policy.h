#pragma once
// What `loom quantize` converts, decided the way mlx-lm / mlx-vlm decide it at convert time (weight-formats.md §2):
// every Linear and Embedding of the text model whose input dimension divides by the group size is quantized,
// `embed_tokens` and `lm_head` included, and so are the projections that embed vision or audio features into the
// text model (Gemma 4 / Gemma 3n `embed_vision`, `embed_audio`); vision and audio towers and
// `multi_modal_projector` stay float, as do norms, biases and every tensor that is not a 2-D `*.weight`.

#include <optional>
#include <string_view>

#include "core/tensor.h"
#include "weights/weight.h"

namespace loom::weights {

// True when the tensor `name` (any naming, tensor_names.h) with `shape` is a Linear/Embedding weight that is quantized
// with groups of `group_size`: a 2-D `….weight` whose module is not a norm, lies under no vision/audio tower or
// projector, and whose last dimension divides by `group_size`.
bool is_quantizable_weight(std::string_view name, const Shape& shape, int group_size);

// The spec for `mode` with MLX's defaults for what is not given (affine 4-bit group 64; mxfp4 group 32; mxfp8 group
// 32; nvfp4 group 16; the fp modes imply their bits). Throws kInvalidRequest naming the option for an unknown mode or a
// combination MLX cannot produce.
QuantSpec resolve_quant_spec(std::string_view mode, std::optional<int> bits, std::optional<int> group_size);

}  // namespace loom::weights
