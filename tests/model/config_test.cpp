// Gemma 3 config parsing: the transformers-5 form (rope_parameters per layer type, layer_types) and the older form
// (rope_theta + rope_scaling, rope_local_base_freq, sliding_window_pattern) must describe the same model; defaults
// come from transformers' Gemma3TextConfig / SiglipVisionConfig; errors name the field.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "model/families/gemma3_config.h"
#include "model_test_util.h"
#include "weights/safetensors.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

// A snapshot directory holding `config` and a one-tensor weight file (Snapshot needs one).
weights::Snapshot snapshot_with(const testing::ScratchDir& dir, json config) {
  if (!config.contains("architectures")) config["architectures"] = {"Gemma3ForConditionalGeneration"};
  std::ofstream(dir.path() / "config.json") << config.dump();
  weights::SafetensorsWriter writer;
  writer.add("unused", Tensor::zeros(DType::kF32, {1}));
  writer.write(dir.path() / "model.safetensors");
  return weights::Snapshot::open(dir.path());
}

std::string error_of(const std::function<void()>& body, ErrorKind kind) {
  try {
    body();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Gemma3Config, LegacyAndTransformers5FormsAgree) {
  const json legacy = {{"architectures", {"Gemma3ForConditionalGeneration"}},
                       {"text_config",
                        {{"hidden_size", 2560},
                         {"num_hidden_layers", 12},
                         {"rope_scaling", {{"rope_type", "linear"}, {"factor", 8.0}}},
                         {"sliding_window", 1024}}},
                       {"vision_config", {{"hidden_size", 1152}, {"image_size", 896}, {"patch_size", 14}}}};
  json modern = legacy;
  modern["text_config"].erase("rope_scaling");
  modern["text_config"]["rope_parameters"] = {
      {"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}, {"rope_theta", 1e6}}},
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}};
  json types = json::array();
  for (int i = 0; i < 12; ++i) types.push_back((i + 1) % 6 == 0 ? "full_attention" : "sliding_attention");
  modern["text_config"]["layer_types"] = types;

  testing::ScratchDir a, b;
  for (const Gemma3Config& c :
       {parse_gemma3_config(snapshot_with(a, legacy)), parse_gemma3_config(snapshot_with(b, modern))}) {
    EXPECT_EQ(c.text.hidden_size, 2560);
    EXPECT_EQ(c.text.vocab_size, 262208);  // default
    EXPECT_EQ(c.text.head_dim, 256);
    EXPECT_EQ(c.text.heads, 8);
    EXPECT_EQ(c.text.kv_heads, 4);
    EXPECT_FLOAT_EQ(c.text.attention_scale, 1.0f / 16.0f);  // query_pre_attn_scalar 256
    EXPECT_EQ(c.text.sliding_window, 1024);
    ASSERT_EQ(c.text.layer_types.size(), 12u);
    for (int i = 0; i < 12; ++i) {
      EXPECT_EQ(c.text.layer_types[static_cast<size_t>(i)],
                (i + 1) % 6 == 0 ? LayerKind::kFullAttention : LayerKind::kSlidingAttention)
          << i;
    }
    EXPECT_EQ(c.text.rope_full.kind, backend::RopeKind::kLinear);
    EXPECT_EQ(c.text.rope_full.theta, 1e6);
    EXPECT_EQ(c.text.rope_full.factor, 8.0);
    EXPECT_EQ(c.text.rope_full.head_dim, 256);
    EXPECT_EQ(c.text.rope_sliding.kind, backend::RopeKind::kDefault);
    EXPECT_EQ(c.text.rope_sliding.theta, 1e4);
    EXPECT_EQ(c.text.norm_weight, backend::NormWeight::kOnePlus);
    EXPECT_EQ(c.text.activation, backend::Activation::kGeluTanh);
    ASSERT_TRUE(c.vision.has_value());
    EXPECT_EQ(c.vision->hidden_size, 1152);
    EXPECT_EQ(c.vision->patches_per_side(), 64);
    EXPECT_EQ(c.vision->intermediate_size, 3072);  // SigLIP default
    EXPECT_EQ(c.mm_tokens_per_image, 256);
    EXPECT_EQ(c.image_token_id, 262144);
    EXPECT_EQ(c.boi_token_id, 255999);
  }
}

TEST(Gemma3Config, TextOnlyAtTopLevelWithPatternAndLocalBase) {
  testing::ScratchDir dir;
  const json config = {{"architectures", {"Gemma3ForCausalLM"}},
                       {"num_hidden_layers", 4},
                       {"sliding_window_pattern", 2},
                       {"rope_theta", 5e5},
                       {"rope_local_base_freq", 2e4},
                       {"eos_token_id", {1, 106, 1}}};
  const Gemma3Config c = parse_gemma3_config(snapshot_with(dir, config));
  EXPECT_FALSE(c.vision.has_value());
  EXPECT_EQ(c.text.layer_types, (std::vector<LayerKind>{LayerKind::kSlidingAttention, LayerKind::kFullAttention,
                                                        LayerKind::kSlidingAttention, LayerKind::kFullAttention}));
  EXPECT_EQ(c.text.rope_full.kind, backend::RopeKind::kDefault);
  EXPECT_EQ(c.text.rope_full.theta, 5e5);
  EXPECT_EQ(c.text.rope_sliding.theta, 2e4);
  EXPECT_EQ(c.stop_ids, (std::vector<int32_t>{1, 106}));
}

TEST(Gemma3Config, GenerationConfigStopIdsWin) {
  testing::ScratchDir dir;
  std::ofstream(dir.path() / "generation_config.json") << R"({"eos_token_id": [1, 106, 50]})";
  const Gemma3Config c =
      parse_gemma3_config(snapshot_with(dir, {{"architectures", {"Gemma3ForCausalLM"}}, {"eos_token_id", 1}}));
  EXPECT_EQ(c.stop_ids, (std::vector<int32_t>{1, 106, 50}));
}

TEST(Gemma3Config, ErrorsNameTheField) {
  testing::ScratchDir a, b, c, d, e;
  std::string message = error_of(
      [&] {
        parse_gemma3_config(snapshot_with(a, {{"text_config", {{"num_attention_heads", "eight"}}}}));
      },
      ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("num_attention_heads"), std::string::npos) << message;
  EXPECT_NE(message.find("text_config"), std::string::npos) << message;

  message = error_of(
      [&] {
        parse_gemma3_config(snapshot_with(b, {{"num_hidden_layers", 2}, {"layer_types", {"full_attention"}}}));
      },
      ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("layer_types"), std::string::npos) << message;

  message = error_of(
      [&] {
        parse_gemma3_config(snapshot_with(c, {{"rope_scaling", {{"rope_type", "yarn"}}}}));
      },
      ErrorKind::kUnsupported);
  EXPECT_NE(message.find("yarn"), std::string::npos) << message;

  message = error_of(
      [&] {
        parse_gemma3_config(snapshot_with(d, {{"hidden_activation", "relu2"}}));
      },
      ErrorKind::kUnsupported);
  EXPECT_NE(message.find("hidden_activation"), std::string::npos) << message;

  message = error_of(
      [&] {
        parse_gemma3_config(snapshot_with(e, {{"text_config", json::object()},
                                              {"vision_config", {{"image_size", 896}, {"patch_size", 14}}},
                                              {"mm_tokens_per_image", 200}}));
      },
      ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("mm_tokens_per_image"), std::string::npos) << message;
}

}  // namespace
}  // namespace loom::model
