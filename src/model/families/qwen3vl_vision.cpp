#include "model/families/qwen3vl_vision.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>

#include "core/error.h"

namespace loom::model {
namespace {

constexpr const char* kPrefix = "model.visual.";

Linear biased(const WeightLoader& loader, const std::string& module, int64_t rows, int64_t cols) {
  return {loader.matrix(module, rows, cols), loader.f32(module + ".bias", {rows})};
}

// Rows [begin, begin + count) of a row-major tensor of any dtype, copied into an owned tensor.
Tensor copy_rows(const Tensor& t, int64_t begin, int64_t count) {
  Shape shape = t.shape();
  shape[0] = count;
  Tensor out = Tensor::zeros(t.dtype(), shape);
  const size_t row_bytes = t.bytes() / static_cast<size_t>(t.dim(0));
  std::memcpy(out.data(), static_cast<const unsigned char*>(t.data()) + static_cast<size_t>(begin) * row_bytes,
              static_cast<size_t>(count) * row_bytes);
  return out;
}

// Output rows [begin, begin + count) of a Linear in its stored format: rows of a quantized matrix are independent
// (their codes, scales and biases), so the fused qkv splits into three Linears without decoding anything.
Linear linear_rows(const Linear& fused, int64_t begin, int64_t count) {
  Linear out;
  out.weight = fused.weight;
  out.weight.rows = count;
  out.weight.values = copy_rows(fused.weight.values, begin, count);
  if (!fused.weight.scales.empty()) out.weight.scales = copy_rows(fused.weight.scales, begin, count);
  if (!fused.weight.biases.empty()) out.weight.biases = copy_rows(fused.weight.biases, begin, count);
  out.bias = copy_rows(fused.bias, begin, count);
  return out;
}

// Conv3d weight (kernel = stride) as a Linear matrix over the processor's (C, T, py, px) patch rows.
weights::Weight conv3d_as_matrix(const WeightLoader& loader, const Qwen3VLVisionConfig& c) {
  const std::string name = std::string(kPrefix) + "patch_embed.proj.weight";
  const int64_t out = c.hidden_size, ch = c.channels, t = c.temporal_patch_size, p = c.patch_size;
  const Shape torch_layout{out, ch, t, p, p};
  const Shape mlx_layout{out, t, p, p, ch};  // MLX convolutions are channels-last
  const std::optional<weights::TensorRef> ref = loader.snapshot().find(name);
  const bool is_mlx = ref && ref->info->shape == mlx_layout && mlx_layout != torch_layout;
  // loader.f32 reports a missing tensor or a wrong shape against the PyTorch layout.
  Tensor stored = loader.f32(name, is_mlx ? mlx_layout : torch_layout);
  weights::Weight w;
  w.rows = out;
  w.cols = c.patch_values();
  if (!is_mlx) {
    w.values = stored.reshaped({w.rows, w.cols});
    return w;
  }
  w.values = Tensor::zeros(DType::kF32, {w.rows, w.cols});
  const float* src = stored.data_as<float>();
  float* dst = w.values.data_as<float>();
  // [o, t, py, px, c] → [o, c, t, py, px]
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t ti = 0; ti < t; ++ti) {
      for (int64_t pixel = 0; pixel < p * p; ++pixel) {
        for (int64_t ci = 0; ci < ch; ++ci) {
          dst[o * w.cols + (ci * t + ti) * p * p + pixel] = src[o * w.cols + (ti * p * p + pixel) * ch + ci];
        }
      }
    }
  }
  return w;
}

Qwen3VLMergerWeights load_merger(const WeightLoader& loader, const Qwen3VLVisionConfig& c, const std::string& module,
                                 bool norm_after_concat) {
  const int64_t width = c.merged_width();
  const int64_t norm_width = norm_after_concat ? width : c.hidden_size;
  Qwen3VLMergerWeights m;
  m.norm_after_concat = norm_after_concat;
  m.norm_weight = loader.f32(module + ".norm.weight", {norm_width});
  m.norm_bias = loader.f32(module + ".norm.bias", {norm_width});
  m.fc1 = biased(loader, module + ".linear_fc1", width, width);
  m.fc2 = biased(loader, module + ".linear_fc2", c.out_hidden_size, width);
  return m;
}

// One axis of the align-corners bilinear resampling, in fp32 as the reference computes it: the source coordinate
// i·(side−1)/max(size−1, 1), taps floor and floor+1 clamped into the grid, weights 1 − |distance| clamped at 0.
struct AxisTaps {
  int64_t tap[2];
  float weight[2];
};

AxisTaps axis_taps(int64_t index, int64_t size, int side) {
  const float src = static_cast<float>(index * (side - 1)) / static_cast<float>(std::max<int64_t>(size - 1, 1));
  const float floor = std::floor(src);
  const float fraction = src - floor;
  AxisTaps a{};
  for (int k = 0; k < 2; ++k) {
    a.tap[k] = std::clamp<int64_t>(static_cast<int64_t>(floor) + k, 0, side - 1);
    a.weight[k] = std::max(0.0f, 1.0f - std::abs(fraction - static_cast<float>(k)));
  }
  return a;
}

void check_grid(int64_t t, int64_t h, int64_t w, int merge) {
  if (t < 1 || h < 1 || w < 1 || merge < 1 || h % merge != 0 || w % merge != 0) {
    fail(ErrorKind::kInvalidRequest,
         "[qwen3vl vision] grid_thw ({}, {}, {}) must be positive with h and w multiples "
         "of the spatial merge size {}",
         t, h, w, merge);
  }
}

// Raster (row, column) of merge-block row r of an h×w frame.
std::pair<int64_t, int64_t> block_order_coordinates(int64_t r, int64_t w, int merge) {
  const int64_t blocks_w = w / merge;
  const int64_t in_col = r % merge;
  const int64_t in_row = (r / merge) % merge;
  const int64_t block_col = (r / (merge * merge)) % blocks_w;
  const int64_t block_row = r / (int64_t{merge} * merge * blocks_w);
  return {block_row * merge + in_row, block_col * merge + in_col};
}

}  // namespace

std::vector<int32_t> qwen3vl_patch_positions(int64_t t, int64_t h, int64_t w, int merge) {
  check_grid(t, h, w, merge);
  const int64_t frame = h * w, n = t * frame;
  std::vector<int32_t> positions(static_cast<size_t>(2 * n));
  for (int64_t i = 0; i < n; ++i) {
    const auto [row, col] = block_order_coordinates(i % frame, w, merge);
    positions[static_cast<size_t>(i)] = static_cast<int32_t>(row);
    positions[static_cast<size_t>(n + i)] = static_cast<int32_t>(col);
  }
  return positions;
}

Tensor qwen3vl_position_embedding(const Tensor& table, int side, int64_t t, int64_t h, int64_t w, int merge) {
  check_grid(t, h, w, merge);
  if (table.dtype() != DType::kF32 || table.rank() != 2 || side < 1 || table.dim(0) < int64_t{side} * side) {
    fail(ErrorKind::kInternal, "[qwen3vl vision] position table {} ({}) does not hold a {}×{} grid",
         shape_string(table.shape()), dtype_name(table.dtype()), side, side);
  }
  const int64_t hidden = table.dim(1), frame = h * w;
  Tensor out = Tensor::zeros(DType::kF32, {t * frame, hidden});
  const float* rows = table.data_as<float>();
  float* dst = out.data_as<float>();
  for (int64_t r = 0; r < frame; ++r) {
    const auto [row, col] = block_order_coordinates(r, w, merge);
    const AxisTaps ty = axis_taps(row, h, side), tx = axis_taps(col, w, side);
    float* o = dst + r * hidden;
    // Corners in the reference's order (top-left, top-right, bottom-left, bottom-right), each weighted product
    // rounded before it is summed.
    for (int a = 0; a < 2; ++a) {
      for (int b = 0; b < 2; ++b) {
        const float weight = ty.weight[a] * tx.weight[b];
        const float* src = rows + (ty.tap[a] * side + tx.tap[b]) * hidden;
        for (int64_t k = 0; k < hidden; ++k) o[k] += src[k] * weight;
      }
    }
  }
  for (int64_t f = 1; f < t; ++f) std::copy_n(dst, frame * hidden, dst + f * frame * hidden);
  return out;
}

Qwen3VLVisionWeights load_qwen3vl_vision_weights(const WeightLoader& loader, const Qwen3VLVisionConfig& c) {
  const std::string prefix = kPrefix;
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  Qwen3VLVisionWeights w;
  w.patch_embedding = conv3d_as_matrix(loader, c);
  w.patch_bias = loader.f32(prefix + "patch_embed.proj.bias", {h});
  w.position_table = loader.f32(prefix + "pos_embed.weight", {c.num_position_embeddings, h});
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = prefix + "blocks." + std::to_string(i) + ".";
    Qwen3VLVisionBlockWeights block;
    block.norm1_weight = loader.f32(b + "norm1.weight", {h});
    block.norm1_bias = loader.f32(b + "norm1.bias", {h});
    block.norm2_weight = loader.f32(b + "norm2.weight", {h});
    block.norm2_bias = loader.f32(b + "norm2.bias", {h});
    // qkv(x).reshape(T, 3, heads, head_dim): output rows [0, h) are q, [h, 2h) k, [2h, 3h) v.
    const Linear qkv = biased(loader, b + "attn.qkv", 3 * h, h);
    block.attention.q = linear_rows(qkv, 0, h);
    block.attention.k = linear_rows(qkv, h, h);
    block.attention.v = linear_rows(qkv, 2 * h, h);
    block.attention.o = biased(loader, b + "attn.proj", h, h);
    block.mlp.fc1 = biased(loader, b + "mlp.linear_fc1", inter, h);
    block.mlp.fc2 = biased(loader, b + "mlp.linear_fc2", h, inter);
    w.blocks.push_back(std::move(block));
  }
  w.merger = load_merger(loader, c, prefix + "merger", false);
  for (size_t i = 0; i < c.deepstack_indexes.size(); ++i) {
    w.deepstack_mergers.push_back(load_merger(loader, c, prefix + "deepstack_merger_list." + std::to_string(i), true));
  }
  return w;
}

Qwen3VLVisionTower::Qwen3VLVisionTower(const weights::Snapshot& snapshot, const WeightLoader& loader,
                                       backend::Backend& backend)
    : config_(parse_qwen3vl_vision_config(snapshot)),
      weights_(load_qwen3vl_vision_weights(loader, config_)),
      backend_(backend),
      rope_(backend::make_rope_table(
          {.kind = backend::RopeKind::kTwoDConcat, .head_dim = config_.head_dim(), .theta = config_.rope_theta})) {
  attention_.heads = config_.heads;
  attention_.kv_heads = config_.heads;
  attention_.head_dim = config_.head_dim();
  attention_.rope = &rope_;
  attention_.mask = {.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(config_.head_dim()))),
                     .mask = backend::MaskKind::kFull};
  // Everything but the position table into the backend's memory, once.
  weights_.patch_embedding = backend_.upload(weights_.patch_embedding);
  upload(backend_, weights_.patch_bias);
  for (Qwen3VLVisionBlockWeights& block : weights_.blocks) {
    for (Tensor* t : {&block.norm1_weight, &block.norm1_bias, &block.norm2_weight, &block.norm2_bias}) {
      upload(backend_, *t);
    }
    upload(backend_, block.attention);
    upload(backend_, block.mlp);
  }
  auto upload_merger = [this](Qwen3VLMergerWeights& m) {
    upload(backend_, m.norm_weight);
    upload(backend_, m.norm_bias);
    upload(backend_, m.fc1);
    upload(backend_, m.fc2);
  };
  upload_merger(weights_.merger);
  for (Qwen3VLMergerWeights& m : weights_.deepstack_mergers) upload_merger(m);
}

Tensor Qwen3VLVisionTower::merge(const Qwen3VLMergerWeights& m, const Tensor& x) {
  const Qwen3VLVisionConfig& c = config_;
  const int64_t tokens = x.dim(0) / c.merge_unit(), width = c.merged_width();
  Tensor normed = scratch_.get(Slot::kRows, {tokens, width});
  if (m.norm_after_concat) {
    backend_.layer_norm(x.reshaped({tokens, width}), m.norm_weight, m.norm_bias, c.layer_norm_eps, normed);
  } else {
    Tensor per_patch = normed.reshaped(x.shape());
    backend_.layer_norm(x, m.norm_weight, m.norm_bias, c.layer_norm_eps, per_patch);
  }
  Tensor hidden = scratch_.get(Slot::kPooled, {tokens, width});
  linear(backend_, m.fc1, normed, hidden);
  backend_.activation(backend::Activation::kGeluErf, hidden, hidden);
  Tensor out = backend_.allocate(DType::kF32, {tokens, c.out_hidden_size});
  linear(backend_, m.fc2, hidden, out);
  return out;
}

Qwen3VLImageFeatures Qwen3VLVisionTower::encode(const ImagePixels& image) {
  const Qwen3VLVisionConfig& c = config_;
  const int64_t t = image.grid_thw[0], h = image.grid_thw[1], w = image.grid_thw[2];
  check_grid(t, h, w, c.spatial_merge_size);
  const int64_t frame = h * w, rows = t * frame;
  const Tensor& pixels = image.pixel_values;
  if (pixels.dtype() != DType::kF32 || pixels.rank() != 2 || pixels.dim(0) != rows ||
      pixels.dim(1) != c.patch_values()) {
    fail(ErrorKind::kInvalidRequest,
         "[qwen3vl vision] pixel values have shape {} ({}), expected F32 [{}, {}] for grid_thw ({}, {}, {})",
         shape_string(pixels.shape()), dtype_name(pixels.dtype()), rows, c.patch_values(), t, h, w);
  }
  const int64_t tokens = rows / c.merge_unit();
  if (image.soft_tokens != 0 && image.soft_tokens != tokens) {
    fail(ErrorKind::kInvalidRequest, "[qwen3vl vision] image claims {} soft tokens, its grid ({}, {}, {}) gives {}",
         image.soft_tokens, t, h, w, tokens);
  }

  // Conv3d with kernel = stride over (C, T, py, px) rows is a matmul with the reshaped kernel.
  Tensor x = scratch_.get(Slot::kResidual, {rows, c.hidden_size});
  Tensor patches = scratch_.get(Slot::kPatches, pixels.shape());
  backend_.copy(pixels, patches);
  backend_.matmul(patches, weights_.patch_embedding, x);
  backend_.add_bias(x, weights_.patch_bias);
  // Resampled on the host from the host table, then copied in.
  const Tensor host_position =
      qwen3vl_position_embedding(weights_.position_table, c.grid_per_side, t, h, w, c.spatial_merge_size);
  Tensor position = scratch_.get(Slot::kExpertRows, host_position.shape());
  backend_.copy(host_position, position);
  backend_.add(x, position, x);
  const std::vector<int32_t> positions = qwen3vl_patch_positions(t, h, w, c.spatial_merge_size);

  // cu_seqlens: every frame is its own attention sequence.
  std::vector<backend::SequenceSlice> sequences;
  for (int64_t f = 0; f < t; ++f) sequences.push_back({.token_offset = f * frame, .token_count = frame});

  Qwen3VLImageFeatures features;
  Tensor normed = scratch_.get(Slot::kNormed, {rows, c.hidden_size});
  Tensor branch = scratch_.get(Slot::kBranch, {rows, c.hidden_size});
  for (int i = 0; i < c.depth; ++i) {
    const Qwen3VLVisionBlockWeights& block = weights_.blocks[static_cast<size_t>(i)];
    backend_.layer_norm(x, block.norm1_weight, block.norm1_bias, c.layer_norm_eps, normed);
    dense_attention_block(backend_, block.attention, attention_, normed, sequences, scratch_, branch, positions);
    backend_.add(x, branch, x);
    backend_.layer_norm(x, block.norm2_weight, block.norm2_bias, c.layer_norm_eps, normed);
    mlp(backend_, block.mlp, c.activation, normed, scratch_, branch);
    backend_.add(x, branch, x);
    const auto it = std::find(c.deepstack_indexes.begin(), c.deepstack_indexes.end(), i);
    if (it != c.deepstack_indexes.end()) {
      const auto merger = static_cast<size_t>(it - c.deepstack_indexes.begin());
      features.deepstack.push_back(merge(weights_.deepstack_mergers[merger], x));
    }
  }
  features.embeddings = merge(weights_.merger, x);
  return features;
}

}  // namespace loom::model
