#include "model/families/gemma4_moe.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "model/row_ops.h"

namespace loom::model {

Gemma4Routing gemma4_route(const Tensor& probs, int top_k, std::span<const float> per_expert_scale) {
  const int64_t tokens = probs.dim(0), experts = probs.dim(1);
  if (top_k <= 0 || top_k > experts || static_cast<int64_t>(per_expert_scale.size()) != experts) {
    fail(ErrorKind::kInternal, "[gemma4_route] top_k {} of {} experts with {} per-expert scales", top_k, experts,
         per_expert_scale.size());
  }
  Gemma4Routing r;
  r.experts.resize(static_cast<size_t>(tokens * top_k));
  r.weights.resize(r.experts.size());
  std::vector<int32_t> order(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* p = probs.data_as<float>() + t * experts;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [p](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float total = 0;
    for (int k = 0; k < top_k; ++k) total += p[order[static_cast<size_t>(k)]];
    for (int k = 0; k < top_k; ++k) {
      const int32_t e = order[static_cast<size_t>(k)];
      const auto i = static_cast<size_t>(t * top_k + k);
      r.experts[i] = e;
      r.weights[i] = p[e] / total * per_expert_scale[static_cast<size_t>(e)];
    }
  }
  return r;
}

void upload(backend::Backend& backend, Gemma4MoeWeights& w) {
  w.router = backend.upload(w.router);
  for (Tensor* t :
       {&w.router_scale, &w.pre_feedforward_norm_2, &w.post_feedforward_norm_1, &w.post_feedforward_norm_2}) {
    upload(backend, *t);
  }
  for (GatedMlpWeights& expert : w.experts) upload(backend, expert);
}

void gemma4_moe(backend::Backend& backend, const Gemma4MoeWeights& w, int top_k, float eps, backend::Activation act,
                const Tensor& x, Scratch& scratch, Tensor& out) {
  const int64_t tokens = x.dim(0), hidden = x.dim(1);
  const auto experts = static_cast<int64_t>(w.experts.size());
  // Router: the scale vector (times hidden^-0.5) is the weight of a plain RMSNorm.
  Tensor routed = scratch.get(Slot::kRouterInput, {tokens, hidden});
  backend.rms_norm(x, &w.router_scale, {.eps = eps, .weight = backend::NormWeight::kScale}, routed);
  Tensor logits = scratch.get(Slot::kRouterLogits, {tokens, experts});
  backend.matmul(routed, w.router, logits);
  backend.softmax(logits, logits);
  const Tensor probs = backend.to_host(logits);  // [T, experts]: the top-k choice is made on the host
  const Gemma4Routing routing = gemma4_route(probs, top_k, w.per_expert_scale.span<const float>());

  // The experts see the pre_feedforward_layernorm_2 of x; each runs once over the rows routed to it.
  Tensor y = scratch.get(Slot::kRouterInput, {tokens, hidden});
  backend.rms_norm(x, &w.pre_feedforward_norm_2, {.eps = eps, .weight = backend::NormWeight::kScale}, y);
  fill_zero(backend, out);
  std::vector<int64_t> rows;
  std::vector<float> row_weights;
  for (int64_t e = 0; e < experts; ++e) {
    rows.clear();
    row_weights.clear();
    for (int64_t i = 0; i < tokens * top_k; ++i) {
      if (routing.experts[static_cast<size_t>(i)] != e) continue;
      rows.push_back(i / top_k);
      row_weights.push_back(routing.weights[static_cast<size_t>(i)]);
    }
    if (rows.empty()) continue;
    const auto n = static_cast<int64_t>(rows.size());
    Tensor in = scratch.get(Slot::kExpertRows, {n, hidden});
    gather_rows(backend, y, rows, in);
    Tensor expert_out = scratch.get(Slot::kExpertOutput, {n, hidden});
    gated_mlp(backend, w.experts[static_cast<size_t>(e)], act, in, scratch, expert_out);
    // The gathered input is no longer needed: its slot holds the weighted products.
    scatter_add_rows(backend, expert_out, rows, row_weights, in, out);
  }
}

}  // namespace loom::model
