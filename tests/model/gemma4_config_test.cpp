// Gemma 4 config parsing and the per-layer plan: transformers' Gemma4TextConfig defaults and rules (last layer full,
// global head dim and KV heads on full layers, KV-shared layers reading the last earlier layer of their type, the
// double-wide MLP on shared layers), checked on the published E2B layout and on 26B-style fields; errors name the
// field.
#include "model/families/gemma4_config.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace loom::model {
namespace {

using nlohmann::json;

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

// gemma-4-E2B's text_config as published (the fields that shape the decoder).
json e2b_text() {
  json types = json::array();
  for (int i = 0; i < 35; ++i) types.push_back(i % 5 == 4 ? "full_attention" : "sliding_attention");
  return {{"hidden_size", 1536},
          {"hidden_size_per_layer_input", 256},
          {"intermediate_size", 6144},
          {"num_hidden_layers", 35},
          {"num_attention_heads", 8},
          {"num_key_value_heads", 1},
          {"head_dim", 256},
          {"global_head_dim", 512},
          {"num_kv_shared_layers", 20},
          {"use_double_wide_mlp", true},
          {"attention_k_eq_v", false},
          {"final_logit_softcapping", 30.0},
          {"sliding_window", 512},
          {"layer_types", types},
          {"rope_parameters",
           {{"full_attention", {{"partial_rotary_factor", 0.25}, {"rope_theta", 1e6}, {"rope_type", "proportional"}}},
            {"sliding_attention", {{"rope_theta", 1e4}, {"rope_type", "default"}}}}},
          {"vocab_size", 262144},
          {"vocab_size_per_layer_input", 262144},
          {"use_bidirectional_attention", nullptr}};
}

TEST(Gemma4Config, E2bLayoutAndKvSharing) {
  const Gemma4TextConfig c = parse_gemma4_text_config(e2b_text(), "config.json: text_config");
  EXPECT_EQ(c.base.norm_weight, backend::NormWeight::kScale);
  EXPECT_EQ(c.base.attention_scale, 1.0f);
  EXPECT_EQ(c.base.final_logit_softcap, 30.0f);
  EXPECT_EQ(c.ple_dim, 256);
  EXPECT_FALSE(c.bidirectional_vision);
  EXPECT_EQ(c.base.rope_full.kind, backend::RopeKind::kProportional);
  EXPECT_EQ(c.base.rope_full.head_dim, 512);
  EXPECT_DOUBLE_EQ(c.base.rope_full.partial_rotary_factor, 0.25);
  EXPECT_EQ(c.base.rope_sliding.kind, backend::RopeKind::kDefault);
  EXPECT_EQ(c.base.rope_sliding.head_dim, 256);

  const std::vector<Gemma4LayerPlan> plans = plan_gemma4_layers(c);
  ASSERT_EQ(plans.size(), 35u);
  // Layers 0–14 store K/V in cache layers 0–14; 15–34 share: sliding ones read layer 13, full ones layer 14.
  for (int i = 0; i < 35; ++i) {
    const Gemma4LayerPlan& p = plans[static_cast<size_t>(i)];
    const bool full = i % 5 == 4;
    EXPECT_EQ(p.kind, full ? LayerKind::kFullAttention : LayerKind::kSlidingAttention) << i;
    EXPECT_EQ(p.head_dim, full ? 512 : 256) << i;
    EXPECT_EQ(p.kv_heads, 1) << i;
    EXPECT_FALSE(p.k_eq_v);
    EXPECT_EQ(p.stores_kv, i < 15) << i;
    EXPECT_EQ(p.cache_layer, i < 15 ? i : (full ? 14 : 13)) << i;
    EXPECT_EQ(p.intermediate_size, i < 15 ? 6144 : 12288) << i;
  }
  const std::vector<backend::KvLayerShape> kv = gemma4_kv_layers(plans);
  ASSERT_EQ(kv.size(), 15u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(kv[static_cast<size_t>(i)].head_dim, i % 5 == 4 ? 512 : 256);
}

TEST(Gemma4Config, KEqVMoeAndBidirectionalVision) {
  json t = {{"hidden_size", 64},
            {"intermediate_size", 128},
            {"num_hidden_layers", 4},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"num_global_key_value_heads", 1},
            {"head_dim", 16},
            {"global_head_dim", 32},
            {"attention_k_eq_v", true},
            {"hidden_size_per_layer_input", nullptr},
            {"enable_moe_block", true},
            {"num_experts", 8},
            {"top_k_experts", 2},
            {"moe_intermediate_size", 32},
            {"use_bidirectional_attention", "vision"},
            {"layer_types", {"sliding_attention", "full_attention", "sliding_attention", "sliding_attention"}}};
  Gemma4TextConfig c = parse_gemma4_text_config(t, "cfg");
  EXPECT_EQ(c.ple_dim, 0);  // null means no per-layer embeddings, not the default 256
  EXPECT_TRUE(c.bidirectional_vision);
  EXPECT_TRUE(c.moe);
  EXPECT_EQ(c.experts, 8);
  std::vector<Gemma4LayerPlan> plans = plan_gemma4_layers(c);
  // The last layer is forced to full attention, as transformers does.
  EXPECT_EQ(plans[3].kind, LayerKind::kFullAttention);
  EXPECT_EQ(plans[1].kv_heads, 1);
  EXPECT_TRUE(plans[1].k_eq_v);
  EXPECT_EQ(plans[1].head_dim, 32);
  EXPECT_EQ(plans[2].kv_heads, 2);
  EXPECT_FALSE(plans[2].k_eq_v);
  // Without attention_k_eq_v the global KV head count does not apply.
  t["attention_k_eq_v"] = false;
  c = parse_gemma4_text_config(t, "cfg");
  plans = plan_gemma4_layers(c);
  EXPECT_EQ(plans[1].kv_heads, 2);
  EXPECT_FALSE(plans[1].k_eq_v);
}

// transformers 5 writes the resolved per-layer overrides instead of global_head_dim: the two forms must agree.
TEST(Gemma4Config, PerLayerConfigFormMatchesGlobalFields) {
  json global = {{"num_hidden_layers", 3},
                 {"num_attention_heads", 4},
                 {"num_key_value_heads", 2},
                 {"head_dim", 16},
                 {"global_head_dim", 32},
                 {"num_global_key_value_heads", 1},
                 {"attention_k_eq_v", true},
                 {"hidden_size_per_layer_input", 0},
                 {"layer_types", {"sliding_attention", "full_attention", "full_attention"}}};
  json written = global;
  written.erase("global_head_dim");
  written.erase("num_global_key_value_heads");
  written["per_layer_config"] = {{"1", {{"head_dim", 32}, {"num_key_value_heads", 1}}},
                                 {"2", {{"head_dim", 32}, {"num_key_value_heads", 1}}}};
  const Gemma4TextConfig a = parse_gemma4_text_config(global, "a"), b = parse_gemma4_text_config(written, "b");
  EXPECT_EQ(a.layer_head_dim, (std::vector<int>{16, 32, 32}));
  EXPECT_EQ(a.layer_kv_heads, (std::vector<int>{2, 1, 1}));
  EXPECT_EQ(b.layer_head_dim, a.layer_head_dim);
  EXPECT_EQ(b.layer_kv_heads, a.layer_kv_heads);
  EXPECT_EQ(b.base.rope_full.head_dim, 32);
  written["per_layer_config"]["7"] = {{"head_dim", 32}};
  EXPECT_NE(error_of([&] { parse_gemma4_text_config(written, "b"); }, ErrorKind::kInvalidFile).find("per_layer_config"),
            std::string::npos);
}

TEST(Gemma4Config, DefaultsFollowTransformers) {
  const Gemma4TextConfig c = parse_gemma4_text_config(json::object(), "cfg");
  EXPECT_EQ(c.base.layers, 30);
  EXPECT_EQ(c.base.hidden_size, 2304);
  EXPECT_EQ(c.global_head_dim, 512);
  EXPECT_EQ(c.ple_dim, 256);
  EXPECT_EQ(c.base.sliding_window, 512);
  EXPECT_EQ(c.base.rope_full.kind, backend::RopeKind::kProportional);
  EXPECT_DOUBLE_EQ(c.base.rope_full.theta, 1e6);
  EXPECT_DOUBLE_EQ(c.base.rope_sliding.theta, 1e4);
  const std::vector<Gemma4LayerPlan> plans = plan_gemma4_layers(c);
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(plans[static_cast<size_t>(i)].kind,
              (i + 1) % 6 == 0 ? LayerKind::kFullAttention : LayerKind::kSlidingAttention);
    EXPECT_TRUE(plans[static_cast<size_t>(i)].stores_kv);
  }
}

TEST(Gemma4Config, ErrorsNameTheField) {
  json t = e2b_text();
  t["num_kv_shared_layers"] = 35;
  EXPECT_NE(error_of([&] { parse_gemma4_text_config(t, "cfg"); }, ErrorKind::kInvalidFile).find("num_kv_shared_layers"),
            std::string::npos);
  // Sharing every layer after the first leaves the full layers no source.
  t = e2b_text();
  t["num_kv_shared_layers"] = 31;
  const Gemma4TextConfig c = parse_gemma4_text_config(t, "cfg");
  EXPECT_NE(error_of([&] { plan_gemma4_layers(c); }, ErrorKind::kInvalidFile).find("num_kv_shared_layers"),
            std::string::npos);
  t = e2b_text();
  t["use_bidirectional_attention"] = "all";
  EXPECT_NE(error_of([&] { parse_gemma4_text_config(t, "cfg"); }, ErrorKind::kUnsupported).find("use_bidirectional"),
            std::string::npos);
  t = e2b_text();
  t["rope_parameters"]["full_attention"]["partial_rotary_factor"] = 1.5;
  EXPECT_NE(
      error_of([&] { parse_gemma4_text_config(t, "cfg"); }, ErrorKind::kInvalidFile).find("partial_rotary_factor"),
      std::string::npos);
  t = e2b_text();
  t["rope_parameters"]["full_attention"]["rope_type"] = "yarn";
  EXPECT_NE(error_of([&] { parse_gemma4_text_config(t, "cfg"); }, ErrorKind::kUnsupported).find("yarn"),
            std::string::npos);
  t = e2b_text();
  t["enable_moe_block"] = true;
  EXPECT_NE(error_of([&] { parse_gemma4_text_config(t, "cfg"); }, ErrorKind::kInvalidFile).find("num_experts"),
            std::string::npos);
  t = e2b_text();
  t["layer_types"].erase(0);
  EXPECT_NE(error_of([&] { parse_gemma4_text_config(t, "cfg"); }, ErrorKind::kInvalidFile).find("layer_types"),
            std::string::npos);
  t = e2b_text();
  t["global_head_dim"] = "512";
  EXPECT_NE(error_of([&] { parse_gemma4_text_config(t, "cfg"); }, ErrorKind::kInvalidFile).find("global_head_dim"),
            std::string::npos);
}

}  // namespace
}  // namespace loom::model
