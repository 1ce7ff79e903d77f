#pragma once
// Gemma 3: Gemma3ForConditionalGeneration (SigLIP tower + projector + text decoder) and Gemma3ForCausalLM (the
// text-only 270M / 1B checkpoints). The math follows transformers' modeling_gemma3 (models.md §1):
//   text: embed · sqrt(hidden) (the scale rounded to the embedding dtype), per layer
//         h = x + post_attention_norm(attn(input_norm(x))); x = h + post_ff_norm(mlp(pre_ff_norm(h))),
//         (1 + w) RMSNorms, q/k norms before RoPE, sliding / full layers with their own RoPE, attention scale
//         query_pre_attn_scalar^-0.5; final norm; lm_head (tied to the embedding unless the snapshot has one).
//   image: SigLIP last hidden state → AvgPool to mm_tokens_per_image → (1 + w) RMSNorm → x @ mm_input_projection.
// Image features replace the embeddings of image-token rows as they are (no embedding scale).

#include <memory>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "model/families/gemma3_config.h"
#include "model/families/siglip.h"
#include "model/layers.h"
#include "model/model.h"
#include "model/sharding.h"
#include "model/step_runner.h"
#include "weights/snapshot.h"

namespace loom::model {

struct Gemma3DecoderLayerWeights {
  Tensor input_norm;             // F32 [hidden]
  Tensor post_attention_norm;    // F32 [hidden]
  Tensor pre_feedforward_norm;   // F32 [hidden]
  Tensor post_feedforward_norm;  // F32 [hidden]
  AttentionWeights attention;    // q [heads·D, hidden], k/v [kv_heads·D, hidden], o [hidden, heads·D], norms [D]
  GatedMlpWeights mlp;           // gate/up [intermediate, hidden], down [hidden, intermediate]
};

struct Gemma3TextWeights {
  weights::Weight embed;  // [vocab, hidden] (sharded: this rank's vocabulary rows)
  std::vector<Gemma3DecoderLayerWeights> layers;
  Tensor final_norm;        // F32 [hidden]
  weights::Weight lm_head;  // [vocab, hidden]; shares the embedding's storage when tied
};

struct Gemma3ProjectorWeights {
  Tensor soft_emb_norm;        // F32 [vision hidden]
  weights::Weight projection;  // [text hidden, vision hidden]: the stored [in, out] parameter, transposed at load
};

// sqrt(hidden) as transformers applies it: a float32 scalar cast to the embedding's dtype before the multiply
// (bf16: sqrt(2560) = 50.596 becomes 50.5). Quantized embeddings decode to their scales' dtype.
float gemma3_embedding_scale(const weights::Weight& embed, int64_t hidden);

class Gemma3Model final : public Model {
 public:
  // With an active `sharding`, the text decoder is this rank's tensor-parallel shard (tensor_parallel.h); the vision
  // tower and projector are whole on every rank.
  Gemma3Model(const weights::Snapshot& snapshot, backend::Backend& backend, const Sharding& sharding = {});

  const ModelInfo& info() const override { return info_; }
  backend::Backend* backend() override { return &backend_; }
  Tensor encode_image(const ImagePixels& image) override;
  Tensor forward(const StepInputs& step, backend::KvCache& cache) override;
  StepCounts step_counts() const override { return runner_.counts(); }

  const Gemma3Config& config() const { return config_; }

 private:
  void upload_text_weights();
  void scatter_images(const StepInputs& step, Tensor& x);

  backend::Backend& backend_;
  Sharding sharding_;
  Gemma3Config config_;
  ModelInfo info_;
  Gemma3TextWeights text_;
  float embed_scale_ = 1.0f;
  backend::RopeTable rope_full_;
  backend::RopeTable rope_sliding_;
  std::vector<AttentionParams> attention_;  // per layer
  std::optional<SiglipTower> tower_;
  Gemma3ProjectorWeights projector_;
  Scratch scratch_{&backend_};
  Scratch vision_scratch_{&backend_};
  // The step's ops after the ids are prepared (StepRunner runs it, maybe recording it); logits left where
  // lm_head_logits leaves them.
  Tensor forward_logits(const StepInputs& step, backend::KvCache& cache);
  std::vector<int32_t> ids_;
  StepRunner runner_;
};

}  // namespace loom::model
