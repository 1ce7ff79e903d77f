#pragma once
// The configuration of the Qwen3 decoder family: Qwen3VLForConditionalGeneration and
// Qwen3VLMoeForConditionalGeneration (text_config + vision_config), and the text-only Qwen3ForCausalLM and
// Qwen3MoeForCausalLM (text fields at the top level). transformers' defaults (Qwen3VLTextConfig,
// Qwen3VLMoeTextConfig, Qwen3Config, Qwen3MoeConfig) fill what config.json omits.
//
// RoPE: the vision-language models always rotate with interleaved M-RoPE (transformers' Qwen3VL text rotary embedding
// recomposes the three axes whatever `mrope_interleaved` says), `mrope_section` from rope_parameters / rope_scaling,
// default [24, 20, 20]; the text-only models use plain RoPE. Only rope_type "default" (and "linear") is supported.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace loom::weights {
class Snapshot;
}

namespace loom::model {

// The sparse MLP of the MoE variants.
struct Qwen3MoeConfig {
  int experts = 0;                   // num_experts
  int top_k = 0;                     // num_experts_per_tok
  int64_t intermediate_size = 0;     // moe_intermediate_size (per expert)
  bool normalize_top_k = true;       // norm_topk_prob (always on in Qwen3-VL-MoE's router)
  int sparse_step = 1;               // decoder_sparse_step
  std::vector<int> mlp_only_layers;  // layers that keep a dense MLP of intermediate_size

  // transformers: not in mlp_only_layers, experts > 0 and (layer + 1) % decoder_sparse_step == 0.
  bool is_sparse(int layer) const;
};

struct Qwen3VLConfig {
  std::string architecture;
  TextConfig text;  // rope_full is the decoder's RoPE (every layer is full attention)
  bool attention_bias = false;
  std::optional<Qwen3MoeConfig> moe;  // the *Moe* variants
  bool vision = false;                // a vision tower is part of the model (the *VL* variants)
  int spatial_merge_size = 2;         // vision_config.spatial_merge_size
  int deepstack_layers = 0;           // len(vision_config.deepstack_visual_indexes)
  int64_t vision_out_hidden = 0;      // vision_config.out_hidden_size (must equal the text hidden size)
  int32_t image_token_id = -1;
  int32_t video_token_id = -1;
  int32_t vision_start_token_id = -1;
  int32_t vision_end_token_id = -1;
  std::vector<int32_t> stop_ids;
};

// Throws loom::Error(kInvalidFile) naming config.json and the field for a malformed value, kUnsupported for a feature
// loom does not implement (sliding-window Qwen3, an unknown rope_type or activation).
Qwen3VLConfig parse_qwen3vl_config(const weights::Snapshot& snapshot);

}  // namespace loom::model
