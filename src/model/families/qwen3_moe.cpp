#include "model/families/qwen3_moe.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "model/row_ops.h"
#include "model/tensor_parallel.h"
#include "weights/quant/quantize.h"

namespace loom::model {
namespace {

size_t element_bytes(const Tensor& t) {
  return static_cast<size_t>(dtype_bits(t.dtype()) / 8);
}

// Rows [row_begin, row_begin + rows) of matrix `index` of a stacked [count, R, C] tensor, as a [rows, C] view.
Tensor slice_rows(const Tensor& stacked, int64_t index, int64_t row_begin, int64_t rows) {
  const int64_t r = stacked.dim(1), c = stacked.dim(2);
  const size_t offset = static_cast<size_t>((index * r + row_begin) * c) * element_bytes(stacked);
  auto* base = static_cast<unsigned char*>(const_cast<void*>(stacked.data()));
  return Tensor::borrow(stacked.dtype(), {rows, c}, base + offset);
}

// [n, a, b] → [n, b, a] in the stored dtype.
Tensor transpose_last_two(const Tensor& t) {
  const int64_t n = t.dim(0), a = t.dim(1), b = t.dim(2);
  Tensor out = Tensor::zeros(t.dtype(), {n, b, a});
  const size_t elem = element_bytes(t);
  const auto* in = static_cast<const unsigned char*>(t.data());
  auto* dst = static_cast<unsigned char*>(out.data());
  for (int64_t e = 0; e < n; ++e) {
    for (int64_t i = 0; i < a; ++i) {
      for (int64_t j = 0; j < b; ++j) {
        std::memcpy(dst + static_cast<size_t>((e * b + j) * a + i) * elem,
                    in + static_cast<size_t>((e * a + i) * b + j) * elem, elem);
      }
    }
  }
  return out;
}

bool is_float(DType d) {
  return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16;
}

// A float 3-D tensor as [experts, out, in]: `stored` is either that or its in × out transpose.
Tensor read_expert_stack(const WeightLoader& loader, const std::string& name, int64_t experts, int64_t out,
                         int64_t in) {
  const weights::Snapshot& snapshot = loader.snapshot();
  const auto ref = snapshot.find(name);
  if (!ref) {
    fail(ErrorKind::kInvalidFile, "{}: missing tensor {} (expected shape [{}, {}, {}])", snapshot.dir().string(), name,
         experts, in, out);
  }
  const Shape& shape = ref->info->shape;
  const Shape in_out{experts, in, out}, out_in{experts, out, in};
  if (shape != in_out && shape != out_in) {
    fail(ErrorKind::kInvalidFile, "{}: tensor {} has shape {}, expected {} (or {})", ref->file->path().string(), name,
         shape_string(shape), shape_string(in_out), shape_string(out_in));
  }
  if (!is_float(ref->info->dtype)) {
    fail(ErrorKind::kUnsupported, "{}: tensor {} is stored as {}; fused experts must be F32, F16 or BF16",
         ref->file->path().string(), name, dtype_name(ref->info->dtype));
  }
  const Tensor stored = ref->file->to_tensor(ref->info->name);
  return shape == in_out ? transpose_last_two(stored) : stored;  // in × out is the checkpoint orientation
}

weights::Weight float_weight(Tensor values) {
  weights::Weight w;
  w.rows = values.dim(0);
  w.cols = values.dim(1);
  w.values = std::move(values);
  return w;
}

void load_fused(const WeightLoader& loader, const std::string& mlp, const Qwen3MoeConfig& moe, int64_t hidden,
                Qwen3MoeWeights& w) {
  const int64_t inter = moe.intermediate_size;
  Tensor gate_up = read_expert_stack(loader, mlp + ".experts.gate_up_proj", moe.experts, 2 * inter, hidden);
  Tensor down = read_expert_stack(loader, mlp + ".experts.down_proj", moe.experts, hidden, inter);
  for (int e = 0; e < moe.experts; ++e) {
    GatedMlpWeights x;
    x.gate.weight = float_weight(slice_rows(gate_up, e, 0, inter));
    x.up.weight = float_weight(slice_rows(gate_up, e, inter, inter));
    x.down.weight = float_weight(slice_rows(down, e, 0, hidden));
    w.experts.push_back(std::move(x));
  }
  w.storage.push_back(std::move(gate_up));
  w.storage.push_back(std::move(down));
}

// One MLX switch_mlp projection [experts, rows, cols], float or quantized, split into per-expert Weights.
std::vector<weights::Weight> load_stacked(const WeightLoader& loader, const std::string& module, int experts,
                                          int64_t rows, int64_t cols, std::vector<Tensor>& storage) {
  const weights::Snapshot& snapshot = loader.snapshot();
  const std::string name = module + ".weight";
  const bool quantized = loader.has(module + ".scales");
  const weights::QuantSpec spec = snapshot.quant_config().spec_for(module, quantized);
  const int64_t stored_cols = spec.mode == weights::QuantMode::kNone ? cols : cols * spec.bits / 32;
  auto read = [&](const std::string& tensor, int64_t width) {
    const auto ref = snapshot.find(tensor);
    const Shape expected{experts, rows, width};
    if (!ref) {
      fail(ErrorKind::kInvalidFile, "{}: missing tensor {} (expected shape {})", snapshot.dir().string(), tensor,
           shape_string(expected));
    }
    if (ref->info->shape != expected) {
      fail(ErrorKind::kInvalidFile, "{}: tensor {} has shape {}, expected {}", ref->file->path().string(), tensor,
           shape_string(ref->info->shape), shape_string(expected));
    }
    storage.push_back(ref->file->to_tensor(ref->info->name));
    return storage.back();
  };
  std::vector<weights::Weight> out(static_cast<size_t>(experts));
  if (spec.mode == weights::QuantMode::kNone) {
    const Tensor values = read(name, cols);
    if (!is_float(values.dtype())) {
      fail(ErrorKind::kUnsupported, "{}: tensor {} is stored as {}; expected F32, F16 or BF16", snapshot.dir().string(),
           name, dtype_name(values.dtype()));
    }
    for (int e = 0; e < experts; ++e) out[static_cast<size_t>(e)] = float_weight(slice_rows(values, e, 0, rows));
    return out;
  }
  if (spec.bits <= 0 || spec.group_size <= 0 || (cols * spec.bits) % 32 != 0 || cols % spec.group_size != 0) {
    fail(ErrorKind::kInvalidFile, "{}: {} is quantized as {} but its {} columns do not divide into that format",
         snapshot.dir().string(), module, weights::quant_spec_name(spec), cols);
  }
  const Tensor values = read(name, stored_cols);
  const Tensor scales = read(module + ".scales", cols / spec.group_size);
  const Tensor biases =
      spec.mode == weights::QuantMode::kAffine ? read(module + ".biases", cols / spec.group_size) : Tensor();
  for (int e = 0; e < experts; ++e) {
    weights::Weight& x = out[static_cast<size_t>(e)];
    x.rows = rows;
    x.cols = cols;
    x.quant = spec;
    x.values = slice_rows(values, e, 0, rows);
    x.scales = slice_rows(scales, e, 0, rows);
    if (!biases.empty()) x.biases = slice_rows(biases, e, 0, rows);
    weights::quant::validate(x, fmt::format("{}: {} expert {}", snapshot.dir().string(), name, e));
  }
  return out;
}

}  // namespace

Qwen3MoeWeights load_qwen3_moe_weights(const WeightLoader& loader, const std::string& mlp, const Qwen3MoeConfig& moe,
                                       int64_t hidden, const Sharding& sharding) {
  const int64_t inter = moe.intermediate_size;
  Qwen3MoeWeights w;
  w.router.weight = loader.matrix(mlp + ".gate", moe.experts, hidden);
  if (loader.has(mlp + ".experts.gate_up_proj")) {
    load_fused(loader, mlp, moe, hidden, w);
  } else if (loader.has(mlp + ".switch_mlp.gate_proj.weight")) {
    const std::string s = mlp + ".switch_mlp.";
    auto gate = load_stacked(loader, s + "gate_proj", moe.experts, inter, hidden, w.storage);
    auto up = load_stacked(loader, s + "up_proj", moe.experts, inter, hidden, w.storage);
    auto down = load_stacked(loader, s + "down_proj", moe.experts, hidden, inter, w.storage);
    for (size_t e = 0; e < gate.size(); ++e) {
      GatedMlpWeights x;
      x.gate.weight = std::move(gate[e]);
      x.up.weight = std::move(up[e]);
      x.down.weight = std::move(down[e]);
      w.experts.push_back(std::move(x));
    }
  } else {
    for (int e = 0; e < moe.experts; ++e) {
      const std::string p = mlp + ".experts." + std::to_string(e) + ".";
      GatedMlpWeights x;
      x.gate.weight = loader.matrix(p + "gate_proj", inter, hidden);
      x.up.weight = loader.matrix(p + "up_proj", inter, hidden);
      x.down.weight = loader.matrix(p + "down_proj", hidden, inter);
      w.experts.push_back(std::move(x));
    }
  }
  if (sharding.active()) {
    // Every layout loads whole experts (views into the stacks); each keeps its own part as owned copies.
    const ShardRange part = even_shard(sharding, inter, "[qwen3 moe] " + mlp + " moe_intermediate_size");
    for (size_t e = 0; e < w.experts.size(); ++e) {
      shard_expert(w.experts[e], part, fmt::format("{} expert {}", mlp, e));
    }
    w.storage.clear();
  }
  return w;
}

void upload(backend::Backend& backend, Qwen3MoeWeights& w) {
  upload(backend, w.router);
  for (GatedMlpWeights& expert : w.experts) upload(backend, expert);
  if (backend.device().kind != DeviceKind::kCpu) w.storage.clear();
}

MoeRouting route_top_k(const Tensor& router_logits, int top_k, bool normalize) {
  const int64_t tokens = router_logits.dim(0), experts = router_logits.dim(1);
  if (top_k <= 0 || top_k > experts) {
    fail(ErrorKind::kInternal, "[moe] top_k {} does not fit {} experts", top_k, experts);
  }
  MoeRouting r;
  r.top_k = top_k;
  r.experts.resize(static_cast<size_t>(tokens * top_k));
  r.weights.resize(static_cast<size_t>(tokens * top_k));
  std::vector<float> probs(static_cast<size_t>(experts));
  std::vector<int32_t> order(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = router_logits.data_as<float>() + t * experts;
    const float max = *std::max_element(row, row + experts);
    float total = 0;
    for (int64_t e = 0; e < experts; ++e) total += probs[static_cast<size_t>(e)] = std::exp(row[e] - max);
    for (float& p : probs) p /= total;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int32_t a, int32_t b) {
      const float pa = probs[static_cast<size_t>(a)], pb = probs[static_cast<size_t>(b)];
      return pa > pb || (pa == pb && a < b);
    });
    float chosen = 0;
    for (int j = 0; j < top_k; ++j) chosen += probs[static_cast<size_t>(order[static_cast<size_t>(j)])];
    for (int j = 0; j < top_k; ++j) {
      const auto k = static_cast<size_t>(t * top_k + j);
      r.experts[k] = order[static_cast<size_t>(j)];
      const float p = probs[static_cast<size_t>(r.experts[k])];
      r.weights[k] = normalize ? p / chosen : p;
    }
  }
  return r;
}

void moe_block(backend::Backend& backend, const Qwen3MoeWeights& w, const Qwen3MoeConfig& moe, backend::Activation act,
               const Tensor& x, Scratch& scratch, Tensor& out, backend::Communicator* reduce) {
  const int64_t tokens = x.dim(0), hidden = x.dim(1);
  Tensor logits = scratch.get(Slot::kRouterLogits, {tokens, moe.experts});
  linear(backend, w.router, x, logits);
  const Tensor host_logits = backend.to_host(logits);  // [T, experts]: the top-k choice is made on the host
  const MoeRouting routing = route_top_k(host_logits, moe.top_k, moe.normalize_top_k);

  fill_zero(backend, out);
  std::vector<int64_t> rows;
  std::vector<float> weights;
  for (int e = 0; e < moe.experts; ++e) {
    rows.clear();
    weights.clear();
    for (size_t k = 0; k < routing.experts.size(); ++k) {
      if (routing.experts[k] != e) continue;
      rows.push_back(static_cast<int64_t>(k) / moe.top_k);
      weights.push_back(routing.weights[k]);
    }
    if (rows.empty()) continue;
    const auto n = static_cast<int64_t>(rows.size());
    Tensor in = scratch.get(Slot::kExpertRows, {n, hidden});
    Tensor result = scratch.get(Slot::kExpertOut, {n, hidden});
    gather_rows(backend, x, rows, in);
    gated_mlp(backend, w.experts[static_cast<size_t>(e)], act, in, scratch, result);
    // The gathered input is no longer needed: its slot holds the weighted products.
    scatter_add_rows(backend, result, rows, weights, in, out);
  }
  // Each expert's down projection held some of its input columns: one join for the whole weighted sum.
  if (reduce != nullptr) reduce->all_reduce_sum(out);
}

}  // namespace loom::model
