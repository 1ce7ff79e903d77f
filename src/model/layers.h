#pragma once
// The building blocks families are assembled from, written once against backend::Backend: Linear (+ bias), decoder
// self-attention over the paged KV cache, encoder self-attention over dense K/V, the gated MLP of decoders and the
// plain MLP of ViTs. A block reads its knobs (heads, norms, RoPE table, mask) from plain structs the family fills
// from its config, and takes its intermediate buffers from a Scratch so that one forward pass allocates once.

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "core/tensor.h"
#include "weights/weight.h"

namespace loom::model {

// Named buffers of one forward pass. get() hands out an F32 view of the slot's storage with the requested shape;
// storage only grows, so after the first step of a given size nothing is allocated. A view stays valid until the
// same slot is asked for a larger shape.
enum class Slot : uint8_t {
  // Used inside the blocks below.
  kQuery,
  kKey,
  kValue,
  kQueryNormed,
  kKeyNormed,
  kValueNormed,
  kAttention,
  kGate,
  kUp,
  kActivated,
  kClampedInput,
  // For the families' own use.
  kResidual,
  kNormed,
  kBranch,
  kBranchNormed,
  kRows,
  kPatches,
  kPooled,
  kPerLayerInputs,  // Gemma 4 per-layer embeddings, all layers
  kPerLayerInput,   // one layer's slice of them
  kPerLayerGate,
  kRouterInput,  // MoE routing and expert rows
  kRouterLogits,
  kExpertRows,
  kExpertOutput,
  kMoeBranch,
  kExpertOut,  // Qwen3 MoE expert output and DeepStack rows
  kDeepstack,
  kLogits,  // the output projection's result on a device backend
  kCount,
};

// Storage comes from backend->allocate() (host memory when backend is null), so a GPU model's activations stay on the
// device.
class Scratch {
 public:
  explicit Scratch(backend::Backend* backend = nullptr) : backend_(backend) {}
  Tensor get(Slot slot, Shape shape);

 private:
  backend::Backend* backend_;
  std::array<Tensor, static_cast<size_t>(Slot::kCount)> buffers_;
};

// Clamps around a linear layer (Gemma 4's Gemma4ClippableLinear, bounds read from the checkpoint): the input is
// clamped to [input_min, input_max] before the matmul, the output to [output_min, output_max] after it (and after the
// bias). Infinite bounds, the default, leave that side alone.
struct LinearClip {
  static constexpr float kInf = std::numeric_limits<float>::infinity();
  float input_min = -kInf;
  float input_max = kInf;
  float output_min = -kInf;
  float output_max = kInf;

  bool clamps_input() const { return input_min > -kInf || input_max < kInf; }
  bool clamps_output() const { return output_min > -kInf || output_max < kInf; }
};

// Rows [begin, begin + count) of t along its first axis: a view sharing t's storage and device.
Tensor row_block(const Tensor& t, int64_t begin, int64_t count);

// y = clamp(clamp(x)·Wᵀ (+ b)).
struct Linear {
  weights::Weight weight;  // [out, in]
  Tensor bias;             // F32 [out], empty when the layer has none
  LinearClip clip{};       // no clamping unless the family sets bounds
};

// out [rows, weight.rows] = linear(x [rows, weight.cols]). A clamped input is written to `scratch` slot
// kClampedInput (x itself is left alone: q/k/v share it with different bounds); without a scratch it is allocated.
// With `reduce` (a row-parallel layer holding some input columns, tensor_parallel.h) the partial products are summed
// over its ranks before the bias and the output clamp, which thus apply once to the full result.
void linear(backend::Backend& backend, const Linear& layer, const Tensor& x, Tensor& out, Scratch* scratch = nullptr,
            backend::Communicator* reduce = nullptr);

struct AttentionWeights {
  Linear q;       // [heads·head_dim, hidden]
  Linear k;       // [kv_heads·head_dim, hidden]; empty for a layer that reads another layer's K/V (shared_kv)
  Linear v;       // [kv_heads·head_dim, hidden]; empty: the values are the key projection (Gemma 4 attention_k_eq_v)
  Linear o;       // [hidden, heads·head_dim]
  Tensor q_norm;  // F32 [head_dim]; empty when the family has no q/k norms
  Tensor k_norm;  // F32 [head_dim]
};

struct AttentionParams {
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  backend::RmsNormSpec qk_norm{};            // used when the weights carry q_norm / k_norm
  bool v_norm = false;                       // RMSNorm of v per head without a weight, eps of qk_norm (Gemma 4)
  const backend::RopeTable* rope = nullptr;  // nullptr: no rotary embedding
  backend::AttentionSpec mask{};
  // The layer projects queries only and attends over K/V that an earlier layer of this step already appended to the
  // cache layer it is given (Gemma 4 KV sharing); nothing is appended.
  bool shared_kv = false;
  // Tensor parallelism: heads and kv_heads are this rank's, and the o projection's partial sums are all-reduced over
  // this communicator (nullptr: not sharded).
  backend::Communicator* reduce = nullptr;
};

// Decoder self-attention of one layer for the rows of `batch`: q/k/v projections, per-head q/k norms (and the
// weightless v norm), RoPE at the batch positions, K/V appended to `cache` layer `cache_layer` (unless shared_kv),
// paged attention, o projection. x [T, hidden] → out [T, hidden] (out must not alias x).
void attention_block(backend::Backend& backend, const AttentionWeights& w, const AttentionParams& p, const Tensor& x,
                     const backend::Batch& batch, backend::KvCache& cache, int cache_layer, Scratch& scratch,
                     Tensor& out);

// Encoder self-attention without a cache (vision towers): `sequences` splits the rows into independent images.
// With p.rope set, `positions` holds the rows' RoPE positions axis-major [rope->axes, T] (2D for vision patches).
void dense_attention_block(backend::Backend& backend, const AttentionWeights& w, const AttentionParams& p,
                           const Tensor& x, std::span<const backend::SequenceSlice> sequences, Scratch& scratch,
                           Tensor& out, std::span<const int32_t> positions = {});

struct GatedMlpWeights {
  Linear gate;  // [intermediate, hidden]
  Linear up;    // [intermediate, hidden]
  Linear down;  // [hidden, intermediate]
};

// out = down(act(gate(x)) · up(x)); x, out [T, hidden]. With `reduce`, gate/up hold some intermediate rows and down
// the matching columns: down's partial sums are all-reduced.
void gated_mlp(backend::Backend& backend, const GatedMlpWeights& w, backend::Activation act, const Tensor& x,
               Scratch& scratch, Tensor& out, backend::Communicator* reduce = nullptr);

struct MlpWeights {
  Linear fc1;  // [intermediate, hidden]
  Linear fc2;  // [hidden, intermediate]
};

// out = fc2(act(fc1(x))); x, out [T, hidden].
void mlp(backend::Backend& backend, const MlpWeights& w, backend::Activation act, const Tensor& x, Scratch& scratch,
         Tensor& out);

// Move a block's weights into the backend's memory (once, at load; a no-op on the CPU backend).
void upload(backend::Backend& backend, Linear& layer);
void upload(backend::Backend& backend, AttentionWeights& w);
void upload(backend::Backend& backend, GatedMlpWeights& w);
void upload(backend::Backend& backend, MlpWeights& w);
// A host F32 tensor into the backend's memory; empty stays empty.
void upload(backend::Backend& backend, Tensor& t);

}  // namespace loom::model
