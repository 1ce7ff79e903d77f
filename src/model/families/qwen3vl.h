#pragma once
// The Qwen3 decoder family on one code path: Qwen3VLForConditionalGeneration, Qwen3VLMoeForConditionalGeneration
// (vision tower + text decoder) and the text-only Qwen3ForCausalLM, Qwen3MoeForCausalLM. The math follows
// transformers' modeling_qwen3_vl / modeling_qwen3_vl_moe (models.md §3):
//   embed (no scale); per layer h = x + attn(input_norm(x)); x = h + mlp(post_attention_norm(h)) with w·x RMSNorms,
//   q/k RMSNorms per head before RoPE, attention scale head_dim^-0.5, causal; the MLP dense (silu-gated) or sparse
//   (qwen3_moe.h); final norm; lm_head (the embedding when tied).
//   RoPE: interleaved M-RoPE over (t, h, w) positions for the VL models (Batch::positions [3, T]), plain RoPE for the
//   text-only ones.
//   Images (VL): the tower's merged embeddings replace the image-token rows; DeepStack: after decoder layer i
//   (i < deepstack features) feature i is ADDED to the hidden states of the same rows (transformers'
//   Qwen3VLTextModel._deepstack_process after decoder_layer i).
//
// Image embedding contract with the engine: encode_image returns F32 [soft_tokens, hidden · (1 + deepstack)], the
// merger output in columns [0, hidden) and deepstack feature i in columns [(1 + i)·hidden, (2 + i)·hidden);
// ModelInfo::image_embedding_width says so, and forward() splits the columns again.

#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "model/families/qwen3_moe.h"
#include "model/families/qwen3vl_config.h"
#include "model/layers.h"
#include "model/model.h"
#include "model/sharding.h"
#include "model/step_runner.h"
#include "weights/snapshot.h"

namespace loom::model {

struct Qwen3DecoderLayerWeights {
  Tensor input_norm;           // F32 [hidden]
  Tensor post_attention_norm;  // F32 [hidden]
  AttentionWeights attention;  // q [heads·D, hidden], k/v [kv_heads·D, hidden], o [hidden, heads·D], norms [D]
  GatedMlpWeights mlp;         // dense layers
  Qwen3MoeWeights moe;         // sparse layers (experts non-empty)
  bool sparse = false;
};

struct Qwen3TextWeights {
  weights::Weight embed;  // [vocab, hidden]
  std::vector<Qwen3DecoderLayerWeights> layers;
  Tensor final_norm;        // F32 [hidden]
  weights::Weight lm_head;  // [vocab, hidden]; shares the embedding's storage when tied
};

class Qwen3VLModel final : public Model {
 public:
  // With an active `sharding`, the text decoder is this rank's tensor-parallel shard (tensor_parallel.h; sparse layers
  // split every expert's intermediate dimension); the vision tower is whole on every rank.
  Qwen3VLModel(const weights::Snapshot& snapshot, backend::Backend& backend, const Sharding& sharding = {});

  const ModelInfo& info() const override { return info_; }
  backend::Backend* backend() override { return &backend_; }
  Tensor encode_image(const ImagePixels& image) override;
  Tensor forward(const StepInputs& step, backend::KvCache& cache) override;
  StepCounts step_counts() const override { return runner_.counts(); }

  const Qwen3VLConfig& config() const { return config_; }

 private:
  // Checks each ImageRows and copies its merger columns into x.
  // Every text weight into the backend's memory, once at load (no-op on the CPU backend).
  void upload_text_weights();
  void scatter_images(const StepInputs& step, Tensor& x);
  // x[rows of each image] += deepstack feature `index`.
  void add_deepstack(const StepInputs& step, int index, Tensor& x);

  backend::Backend& backend_;
  Sharding sharding_;
  Qwen3VLConfig config_;
  ModelInfo info_;
  Qwen3TextWeights text_;
  backend::RopeTable rope_;
  AttentionParams attention_;
  // The vision tower (VL models, when it is built in): pixels → [soft_tokens, hidden · (1 + deepstack)].
  std::function<Tensor(const ImagePixels&)> encode_;
  Scratch scratch_{&backend_};
  // The step's ops after the ids are prepared (StepRunner runs it, maybe recording it); logits left where
  // lm_head_logits leaves them.
  Tensor forward_logits(const StepInputs& step, backend::KvCache& cache);
  std::vector<int32_t> ids_;
  StepRunner runner_;
};

}  // namespace loom::model
