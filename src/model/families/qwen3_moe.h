#pragma once
// The sparse MLP of Qwen3-MoE and Qwen3-VL-MoE (transformers' *SparseMoeBlock): a router Linear gives one logit per
// expert, softmax in fp32, the top-k experts by probability, their probabilities renormalised to sum to 1 when
// norm_topk_prob says so (always in Qwen3-VL-MoE), and out = Σ_k weight_k · down_e(silu(gate_e(x)) · up_e(x)).
//
// Expert weights come in three layouts, all loaded into one GatedMlpWeights per expert:
//   - Hugging Face fused (Qwen3-VL-MoE checkpoints): `mlp.experts.gate_up_proj` [experts, hidden, 2·inter] and
//     `mlp.experts.down_proj` [experts, inter, hidden], stored in × out (x @ W); transformers 5's in-memory
//     orientation [experts, 2·inter, hidden] / [experts, hidden, inter] is accepted too (told apart by shape; when
//     hidden = 2·inter the checkpoint orientation is assumed). The first `inter` outputs are the gate, the rest up.
//   - Hugging Face per expert (Qwen3-MoE checkpoints): `mlp.experts.E.{gate,up,down}_proj.weight`, float or
//     MLX-quantized like any Linear.
//   - MLX stacked (mlx-community snapshots): `mlp.switch_mlp.{gate,up,down}_proj.weight` [experts, out, in], float or
//     quantized (packed [experts, out, in·bits/32] with `.scales` / `.biases` [experts, out, in/group]).
// The router is `mlp.gate.weight` [experts, hidden] (float or quantized).

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/families/qwen3vl_config.h"
#include "model/layers.h"
#include "model/sharding.h"
#include "model/weight_loader.h"

namespace loom::model {

struct Qwen3MoeWeights {
  Linear router;                         // [experts, hidden]
  std::vector<GatedMlpWeights> experts;  // gate/up [inter, hidden], down [hidden, inter]
  std::vector<Tensor> storage;           // owned tensors the expert weights view (fused and stacked layouts)
};

// The router and every expert into the backend's memory (once, at load). Off the host the expert views are copies, so
// the host storage they viewed is released.
void upload(backend::Backend& backend, Qwen3MoeWeights& w);

// `mlp` is the module path of the layer's MLP ("model.language_model.layers.3.mlp"). With an active `sharding` every
// expert keeps this rank's part of its intermediate dimension (gate/up rows, down columns); the router is whole.
Qwen3MoeWeights load_qwen3_moe_weights(const WeightLoader& loader, const std::string& mlp, const Qwen3MoeConfig& moe,
                                       int64_t hidden, const Sharding& sharding = {});

// The router's decision for each token: experts[t·k + j] with weights[t·k + j], j in descending probability (ties:
// lower expert index first).
struct MoeRouting {
  int top_k = 0;
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

// router_logits F32 [tokens, experts] → softmax (fp32) → top-k → optional renormalisation.
MoeRouting route_top_k(const Tensor& router_logits, int top_k, bool normalize);

// The router logits come back to the host (F32 [T, experts], small) for the top-k choice; the experts' rows are
// gathered and their weighted outputs accumulated in the backend's memory.
// out [T, hidden] = the sparse MLP of x [T, hidden] (out must not alias x). With `reduce` (sharded experts) the
// weighted sum of every expert's partial output is all-reduced once at the end.
void moe_block(backend::Backend& backend, const Qwen3MoeWeights& w, const Qwen3MoeConfig& moe, backend::Activation act,
               const Tensor& x, Scratch& scratch, Tensor& out, backend::Communicator* reduce = nullptr);

}  // namespace loom::model
