#pragma once
// Gemma 4: Gemma4ForConditionalGeneration (vision tower + embed_vision + text decoder; E2B, E4B, 26B-A4B, 31B) and
// Gemma4ForCausalLM (the decoder alone). The math follows transformers' modeling_gemma4 (models.md §2):
//   embed · sqrt(hidden) (rounded to the embedding dtype); with per-layer embeddings (PLE, E2B/E4B) every layer also
//   gets ple_i = (rmsnorm(per_layer_model_projection(embeds) · hidden^-0.5) + embed_tokens_per_layer(ids) ·
//   sqrt(ple_dim))[i] · 2^-0.5, where the projection sees the merged embeddings (image features in) and the lookup
//   the pad id at image positions;
//   per layer h = x + post_attn_norm(attn(input_norm(x))), x = h + post_ff_norm(mlp(pre_ff_norm(h)))  [MoE layers:
//   post_ff_norm(post_ff_norm_1(mlp(..)) + post_ff_norm_2(experts(pre_ff_norm_2(h))))], then with PLE
//   x += post_per_layer_input_norm(per_layer_projection(act(per_layer_input_gate(x)) · ple_i)), then x *= layer_scalar;
//   RMSNorms multiply by w (no +1); q/k norms with weight, v norm without; attention scale 1; sliding layers rotate
//   fully, full layers use proportional RoPE over global_head_dim; KV-shared layers attend over the cache layer of
//   their source; final norm, lm_head (tied unless the snapshot has one), final logit softcap.
// Image features replace the embeddings of image-token rows as they are (no embedding scale).

#include <memory>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "model/families/gemma4_config.h"
#include "model/families/gemma4_image_encoder.h"
#include "model/families/gemma4_moe.h"
#include "model/layers.h"
#include "model/model.h"
#include "model/sharding.h"
#include "model/step_runner.h"
#include "weights/snapshot.h"

namespace loom::model {

struct Gemma4DecoderLayerWeights {
  Tensor input_norm;             // F32 [hidden]
  Tensor post_attention_norm;    // F32 [hidden]
  Tensor pre_feedforward_norm;   // F32 [hidden]
  Tensor post_feedforward_norm;  // F32 [hidden]
  AttentionWeights attention;    // k/v empty on KV-shared layers, v empty with attention_k_eq_v on full layers
  GatedMlpWeights mlp;           // intermediate doubled on double-wide layers
  std::optional<Gemma4MoeWeights> moe;
  Linear per_layer_input_gate;       // [ple_dim, hidden]; empty without PLE
  Linear per_layer_projection;       // [hidden, ple_dim]
  Tensor post_per_layer_input_norm;  // F32 [hidden]
  float layer_scalar = 1.0f;
};

struct Gemma4TextWeights {
  weights::Weight embed;                       // [vocab, hidden]
  weights::Weight embed_per_layer;             // [ple_vocab, layers·ple_dim]; empty without PLE
  weights::Weight per_layer_model_projection;  // [layers·ple_dim, hidden]
  Tensor per_layer_projection_norm;            // F32 [ple_dim]
  std::vector<Gemma4DecoderLayerWeights> layers;
  Tensor final_norm;        // F32 [hidden]
  weights::Weight lm_head;  // [vocab, hidden]; shares the embedding's storage when tied
};

class Gemma4Model final : public Model {
 public:
  // With an active `sharding`, the text decoder is this rank's tensor-parallel shard (tensor_parallel.h; MoE layers
  // split every expert's intermediate dimension); per-layer embeddings, routers and the vision tower are whole.
  Gemma4Model(const weights::Snapshot& snapshot, backend::Backend& backend, const Sharding& sharding = {});

  const ModelInfo& info() const override { return info_; }
  backend::Backend* backend() override { return &backend_; }
  Tensor encode_image(const ImagePixels& image) override;
  Tensor forward(const StepInputs& step, backend::KvCache& cache) override;
  StepCounts step_counts() const override { return runner_.counts(); }

  const Gemma4Config& config() const { return config_; }
  const std::vector<Gemma4LayerPlan>& layer_plans() const { return plans_; }
  bool has_vision_tower() const { return vision_ != nullptr; }

 private:
  void scatter_images(const StepInputs& step, Tensor& x) const;
  // The combined per-layer inputs [T, layers·ple_dim] for embeddings x (images merged) and lookup ids.
  Tensor per_layer_inputs(const Tensor& x);
  // Every weight into the backend's memory, once at load (no-op on the CPU backend).
  void upload_text_weights();
  void decoder_layer(int i, const backend::Batch& batch, backend::KvCache& cache, const Tensor& per_layer, Tensor& x);

  backend::Backend& backend_;
  Sharding sharding_;
  Gemma4Config config_;
  std::vector<Gemma4LayerPlan> plans_;
  bool multimodal_ = false;  // Gemma4ForConditionalGeneration: multimodal ids are looked up as the pad id
  ModelInfo info_;
  Gemma4TextWeights text_;
  float embed_scale_ = 1.0f;
  float ple_scale_ = 1.0f;
  backend::RopeTable rope_full_;
  backend::RopeTable rope_sliding_;
  std::vector<AttentionParams> attention_;  // per layer
  std::unique_ptr<Gemma4ImageEncoder> vision_;
  Scratch scratch_{&backend_};
  // The step's ops after the ids are prepared (StepRunner runs it, maybe recording it); logits left where
  // lm_head_logits leaves them.
  Tensor forward_logits(const StepInputs& step, backend::KvCache& cache);
  std::vector<int32_t> ids_;
  StepRunner runner_;
};

}  // namespace loom::model
