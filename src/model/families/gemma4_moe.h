#pragma once
// Gemma 4's mixture-of-experts branch (26B-A4B), as transformers' Gemma4TextRouter and Gemma4TextExperts compute it:
//   router:  r = rmsnorm_noweight(x) · scale · hidden^-0.5;  p = softmax(r · projᵀ);  the top_k experts by p, their
//            probabilities renormalised to sum 1, each then multiplied by per_expert_scale[expert];
//   experts: Σ_k weight_k · down_e(act(gate_e(y)) · up_e(y)) with y = pre_feedforward_layernorm_2(x).
// x is the residual stream after attention (the dense MLP's input before its own pre-norm); the model adds the
// normalised branch to the dense MLP's output (gemma4.cpp).

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "model/layers.h"

namespace loom::model {

struct Gemma4MoeWeights {
  Tensor router_scale;                   // F32 [hidden]: router.scale · hidden^-0.5, folded at load
  Tensor per_expert_scale;               // F32 [experts], stays in host memory: the routing is chosen on the host
  weights::Weight router;                // router.proj [experts, hidden]
  std::vector<GatedMlpWeights> experts;  // gate/up [moe_intermediate, hidden] (halves of gate_up_proj), down
  Tensor pre_feedforward_norm_2;         // F32 [hidden]
  Tensor post_feedforward_norm_1;        // F32 [hidden]: on the dense MLP's output
  Tensor post_feedforward_norm_2;        // F32 [hidden]: on the experts' output
};

// Per token: the chosen experts (descending probability, ties to the lower index) and their final weights, [T, k].
struct Gemma4Routing {
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

// Routing from softmax probabilities `probs` [T, experts] (F32).
Gemma4Routing gemma4_route(const Tensor& probs, int top_k, std::span<const float> per_expert_scale);

// Every weight but per_expert_scale into the backend's memory (once, at load).
void upload(backend::Backend& backend, Gemma4MoeWeights& w);

// The router's probabilities come back to the host (F32 [T, experts], small) for the top-k choice; the experts' rows
// are gathered and their weighted outputs accumulated in the backend's memory.
// out [T, hidden] = the experts' weighted sum for x [T, hidden] (not yet post-normed). out must not alias x.
void gemma4_moe(backend::Backend& backend, const Gemma4MoeWeights& w, int top_k, float eps, backend::Activation act,
                const Tensor& x, Scratch& scratch, Tensor& out);

}  // namespace loom::model
