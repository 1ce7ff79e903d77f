// Which tensors `loom quantize` converts and which option combinations it accepts, stated from mlx-lm / mlx-vlm's
// convert-time rules (weight-formats.md §2) for the naming of every supported family.

#include "weights/quantize_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace loom::weights {
namespace {

using ::testing::HasSubstr;

TEST(QuantizePolicy, ChoosesTextLinearsAndEmbedderProjections) {
  const Shape linear{64, 128};
  // Quantized: text-model Linear/Embedding weights in every naming, the LM head, Gemma 4's per-layer embeddings and
  // its vision/audio-to-text embedder projections.
  for (const char* name :
       {"language_model.model.layers.0.self_attn.q_proj.weight", "model.language_model.layers.3.mlp.down_proj.weight",
        "model.layers.1.mlp.gate_proj.weight", "model.embed_tokens.weight", "language_model.model.embed_tokens.weight",
        "lm_head.weight", "language_model.lm_head.weight", "model.language_model.embed_tokens_per_layer.weight",
        "model.language_model.per_layer_model_projection.weight", "model.embed_vision.embedding_projection.weight",
        "embed_vision.embedding_projection.weight", "model.embed_audio.embedding_projection.weight"}) {
    EXPECT_TRUE(is_quantizable_weight(name, linear, 64)) << name;
  }
  // Float: towers and projectors (every naming), norms, biases, raw parameters, non-2-D tensors.
  for (const char* name :
       {"vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
        "vision_tower.encoder.layers.0.self_attn.q_proj.weight", "model.vision_tower.encoder.layers.0.mlp.fc1.weight",
        "model.visual.blocks.0.attn.qkv.weight", "model.visual.merger.linear_fc1.weight",
        "multi_modal_projector.linear_1.weight", "model.multi_modal_projector.mm_input_projection_weight",
        "multi_modal_projector.mm_input_projection_weight", "model.audio_tower.layers.0.fc.weight",
        "audio_tower.conformer.0.ffw_layer_start.ffw_layer_1.weight",
        "model.language_model.layers.0.input_layernorm.weight", "model.norm.weight",
        "model.layers.0.self_attn.q_norm.weight", "model.layers.0.self_attn.q_proj.bias"}) {
    EXPECT_FALSE(is_quantizable_weight(name, linear, 64)) << name;
  }
  EXPECT_FALSE(is_quantizable_weight("model.layers.0.mlp.experts.gate_up_proj.weight", {4, 64, 128}, 64));
  EXPECT_FALSE(is_quantizable_weight("model.layers.0.input_layernorm.weight", {128}, 64));
  // The input dimension must divide by the group size.
  EXPECT_FALSE(is_quantizable_weight("model.layers.0.mlp.down_proj.weight", {64, 96}, 64));
  EXPECT_TRUE(is_quantizable_weight("model.layers.0.mlp.down_proj.weight", {64, 96}, 32));
  EXPECT_TRUE(is_quantizable_weight("model.layers.0.mlp.down_proj.weight", {64, 48}, 16));
}

TEST(QuantizePolicy, ResolvesModesWithMlxDefaults) {
  EXPECT_EQ(resolve_quant_spec("affine", std::nullopt, std::nullopt), (QuantSpec{QuantMode::kAffine, 4, 64}));
  EXPECT_EQ(resolve_quant_spec("affine", 8, 32), (QuantSpec{QuantMode::kAffine, 8, 32}));
  EXPECT_EQ(resolve_quant_spec("mxfp4", std::nullopt, std::nullopt), (QuantSpec{QuantMode::kMxfp4, 4, 32}));
  EXPECT_EQ(resolve_quant_spec("mxfp8", std::nullopt, std::nullopt), (QuantSpec{QuantMode::kMxfp8, 8, 32}));
  EXPECT_EQ(resolve_quant_spec("nvfp4", std::nullopt, std::nullopt), (QuantSpec{QuantMode::kNvfp4, 4, 16}));
  EXPECT_EQ(resolve_quant_spec("nvfp4", 4, 16), (QuantSpec{QuantMode::kNvfp4, 4, 16}));
  const auto message = [](std::string_view mode, std::optional<int> bits, std::optional<int> group) {
    try {
      resolve_quant_spec(mode, bits, group);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message("int4", std::nullopt, std::nullopt), HasSubstr("--mode 'int4' is not one of"));
  EXPECT_THAT(message("affine", 7, std::nullopt), HasSubstr("--bits 7 is not valid for affine"));
  EXPECT_THAT(message("affine", std::nullopt, 48), HasSubstr("--group-size 48 is not valid for affine"));
  EXPECT_THAT(message("mxfp4", 8, std::nullopt), HasSubstr("--bits 8 is not valid for mxfp4"));
  EXPECT_THAT(message("mxfp8", std::nullopt, 64), HasSubstr("--group-size 64 is not valid for mxfp8"));
  EXPECT_THAT(message("nvfp4", std::nullopt, 32), HasSubstr("--group-size 32 is not valid for nvfp4"));
}

}  // namespace
}  // namespace loom::weights
