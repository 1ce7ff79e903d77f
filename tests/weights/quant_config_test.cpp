// Quantization configs as MLX and Hugging Face write them (weight-formats.md §2 "config.json", §4).

#include "weights/quant_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"

namespace loom::weights {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

QuantConfig parse(const char* text, const json* hf = nullptr) {
  return parse_quant_config(json::parse(text), hf, "config.json");
}

std::string error_of(const char* text) {
  try {
    parse(text);
  } catch (const Error& e) {
    return std::string(error_kind_name(e.kind())) + ": " + e.what();
  }
  return "no error";
}

TEST(QuantConfig, NoQuantizationMeansFloat) {
  const QuantConfig q = parse(R"({"hidden_size":64})");
  EXPECT_FALSE(q.quantized());
  EXPECT_EQ(q.spec_for("model.layers.0.mlp.up_proj", true), QuantSpec{});
}

TEST(QuantConfig, MlxDefaultModeIsAffineAndScalesDecide) {
  const QuantConfig q = parse(R"({"quantization":{"group_size":64,"bits":4},
                                  "quantization_config":{"group_size":64,"bits":4}})");
  EXPECT_EQ(q.source, QuantConfig::Source::kMlx);
  const QuantSpec affine{QuantMode::kAffine, 4, 64};
  EXPECT_EQ(q.base, affine);
  EXPECT_EQ(q.spec_for("language_model.model.layers.0.mlp.up_proj", true), affine);
  EXPECT_EQ(q.spec_for("language_model.model.layers.0.mlp.up_proj", false), QuantSpec{});  // no scales: float
}

TEST(QuantConfig, OverridesByModulePathInAnyNaming) {
  const QuantConfig q = parse(R"({"quantization":{"group_size":32,"bits":4,"mode":"mxfp4",
      "language_model.model.layers.3.mlp.gate":{"group_size":64,"bits":8},
      "vision_tower.vision_model.encoder.layers.0.mlp.fc1":false,
      "model.language_model.layers.1.mlp.router":{"mode":"mxfp8","group_size":32,"bits":8}}})");
  EXPECT_EQ(q.base, (QuantSpec{QuantMode::kMxfp4, 4, 32}));
  ASSERT_EQ(q.overrides.size(), 3u);
  // A dict without mode is affine even inside an mxfp4 model; the override wins over the scales rule.
  EXPECT_EQ(q.spec_for("model.language_model.layers.3.mlp.gate", false), (QuantSpec{QuantMode::kAffine, 8, 64}));
  EXPECT_EQ(q.spec_for("language_model.model.layers.3.mlp.gate", true), (QuantSpec{QuantMode::kAffine, 8, 64}));
  EXPECT_EQ(q.spec_for("model.vision_tower.vision_model.encoder.layers.0.mlp.fc1", true), QuantSpec{});
  EXPECT_EQ(q.spec_for("language_model.model.layers.1.mlp.router", true), (QuantSpec{QuantMode::kMxfp8, 8, 32}));
  EXPECT_EQ(q.spec_for("language_model.model.layers.1.mlp.up_proj", true), (QuantSpec{QuantMode::kMxfp4, 4, 32}));
}

TEST(QuantConfig, FindsTheConfigUnderTextConfig) {
  const QuantConfig q = parse(R"({"text_config":{"quantization_config":{"group_size":128,"bits":6}}})");
  EXPECT_EQ(q.base, (QuantSpec{QuantMode::kAffine, 6, 128}));
}

TEST(QuantConfig, ValidatesBitsAndGroups) {
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int group : {32, 64, 128}) EXPECT_NO_THROW(validate_quant_spec({QuantMode::kAffine, bits, group}, "t"));
  }
  EXPECT_THAT(error_of(R"({"quantization":{"group_size":64,"bits":7}})"),
              HasSubstr("invalid_file: config.json: \"quantization\": affine bits 7 / group_size 64 is invalid"));
  EXPECT_THAT(error_of(R"({"quantization":{"group_size":16,"bits":4}})"), HasSubstr("group_size 16 is invalid"));
  EXPECT_THAT(error_of(R"({"quantization":{"group_size":64,"bits":4,"mode":"mxfp4"}})"),
              HasSubstr("mxfp4 needs bits 4 and group_size 32"));
  EXPECT_THAT(error_of(R"({"quantization":{"group_size":32,"bits":4,"mode":"nvfp4"}})"),
              HasSubstr("nvfp4 needs bits 4 and group_size 16"));
  EXPECT_THAT(error_of(R"({"quantization":{"group_size":32,"bits":4,"mode":"mxfp8"}})"),
              HasSubstr("mxfp8 needs bits 8 and group_size 32"));
  EXPECT_THAT(error_of(R"({"quantization":{"group_size":32,"bits":4,"mode":"q4_k"}})"),
              HasSubstr("unsupported: config.json: \"quantization\": quantization mode \"q4_k\""));
  EXPECT_THAT(error_of(R"({"quantization":{"group_size":64,"bits":4,"m.x":{"bits":9}}})"),
              HasSubstr("override \"m.x\": affine bits 9"));
  EXPECT_THAT(error_of(R"({"quantization":{"group_size":"64","bits":4}})"),
              HasSubstr("\"group_size\" must be an integer"));
  EXPECT_EQ(parse(R"({"quantization":{"mode":"nvfp4"}})").base, (QuantSpec{QuantMode::kNvfp4, 4, 16}));
}

TEST(QuantConfig, GptOssMxfp4) {
  const QuantConfig q = parse(R"({"quantization_config":{"quant_method":"mxfp4",
      "modules_to_not_convert":["model.layers.*.self_attn","model.embed_tokens","lm_head","router"]}})");
  ASSERT_TRUE(q.hf.has_value());
  EXPECT_EQ(q.source, QuantConfig::Source::kHuggingFace);
  EXPECT_EQ(q.hf->kind, HfQuantKind::kMxfp4);
  EXPECT_EQ(q.hf->group_size, 32);
  EXPECT_EQ(q.hf->equivalent, (QuantSpec{QuantMode::kMxfp4, 4, 32}));
  EXPECT_EQ(q.spec_for("model.layers.0.mlp.experts.gate_up_proj", true), (QuantSpec{QuantMode::kMxfp4, 4, 32}));
  EXPECT_EQ(q.spec_for("lm_head", true), QuantSpec{});
  EXPECT_EQ(q.spec_for("model.layers.0.mlp.router", true), QuantSpec{});
}

TEST(QuantConfig, ModeloptNvfp4FromConfigAndFromHfQuantConfig) {
  const QuantConfig a = parse(R"({"quantization_config":{"quant_method":"modelopt","quant_algo":"NVFP4",
                                  "group_size":16,"ignore":["lm_head"]}})");
  EXPECT_EQ(a.hf->kind, HfQuantKind::kModeloptNvfp4);
  EXPECT_EQ(a.hf->equivalent, (QuantSpec{QuantMode::kNvfp4, 4, 16}));
  EXPECT_EQ(a.spec_for("lm_head", true), QuantSpec{});
  EXPECT_EQ(a.spec_for("model.language_model.layers.0.mlp.down_proj", true), (QuantSpec{QuantMode::kNvfp4, 4, 16}));

  const json hf = json::parse(R"({"producer":{"name":"modelopt"},"quantization":{"quant_algo":"NVFP4",
      "group_size":16,"exclude_modules":["language_model.lm_head","vision_tower"]}})");
  const QuantConfig b = parse(R"({"architectures":["X"]})", &hf);
  ASSERT_TRUE(b.hf.has_value());
  EXPECT_EQ(b.hf->kind, HfQuantKind::kModeloptNvfp4);
  EXPECT_EQ(b.spec_for("lm_head", true), QuantSpec{});  // excluded in Hub naming, asked in canonical naming
  EXPECT_EQ(b.spec_for("model.vision_tower.vision_model.encoder.layers.0.mlp.fc1", true), QuantSpec{});

  const json fp8 = json::parse(R"({"quantization":{"quant_algo":"FP8"}})");
  EXPECT_THROW(parse("{}", &fp8), Error);
}

TEST(QuantConfig, CompressedTensorsFormats) {
  const QuantConfig nv = parse(R"({"quantization_config":{"quant_method":"compressed-tensors",
      "format":"nvfp4-pack-quantized","ignore":["re:.*vision_tower.*","lm_head"],
      "config_groups":{"group_0":{"targets":["Linear"],"weights":{"num_bits":4,"type":"float","group_size":16}}}}})");
  EXPECT_EQ(nv.hf->kind, HfQuantKind::kCompressedNvfp4);
  EXPECT_EQ(nv.hf->group_size, 16);
  EXPECT_EQ(nv.spec_for("model.vision_tower.vision_model.encoder.layers.0.mlp.fc1", true), QuantSpec{});
  EXPECT_EQ(nv.spec_for("model.language_model.layers.0.mlp.up_proj", true), (QuantSpec{QuantMode::kNvfp4, 4, 16}));
  EXPECT_EQ(nv.spec_for("model.language_model.layers.0.mlp.up_proj", false), QuantSpec{});

  const QuantConfig mx = parse(R"({"quantization_config":{"quant_method":"compressed-tensors",
      "config_groups":{"g":{"format":"mxfp4-pack-quantized","weights":{"num_bits":4,"group_size":32}}}}})");
  EXPECT_EQ(mx.hf->kind, HfQuantKind::kCompressedMxfp4);
  EXPECT_EQ(mx.hf->equivalent, (QuantSpec{QuantMode::kMxfp4, 4, 32}));

  const QuantConfig in = parse(R"({"quantization_config":{"quant_method":"compressed-tensors",
      "format":"pack-quantized","config_groups":{"g":{"weights":{"num_bits":4,"type":"int","group_size":128}}}}})");
  EXPECT_EQ(in.hf->kind, HfQuantKind::kCompressedInt);
  EXPECT_EQ(in.hf->bits, 4);
  EXPECT_EQ(in.hf->group_size, 128);
  EXPECT_FALSE(in.hf->equivalent.has_value());
  EXPECT_THROW(in.spec_for("model.layers.0.mlp.up_proj", true), Error);  // recognised, no kernel

  EXPECT_THAT(error_of(R"({"quantization_config":{"quant_method":"compressed-tensors","format":"float-quantized"}})"),
              HasSubstr("unsupported: config.json: \"quantization_config\": compressed-tensors format "
                        "\"float-quantized\""));
}

TEST(QuantConfig, BlockFp8) {
  const QuantConfig q = parse(R"({"quantization_config":{"quant_method":"fp8","fmt":"e4m3",
      "activation_scheme":"dynamic","weight_block_size":[128,128]}})");
  EXPECT_EQ(q.hf->kind, HfQuantKind::kBlockFp8);
  EXPECT_EQ(q.hf->weight_block_size, (std::vector<int>{128, 128}));
  EXPECT_THAT(q.hf->description, HasSubstr("128x128"));
  EXPECT_THAT(error_of(R"({"quantization_config":{"quant_method":"fp8"}})"), HasSubstr("weight_block_size"));
}

TEST(QuantConfig, UnknownMethodIsUnsupportedAndNamed) {
  EXPECT_EQ(error_of(R"({"quantization_config":{"quant_method":"gptq","bits":4}})"),
            "unsupported: config.json: \"quantization_config\": quant_method \"gptq\" is not supported");
  EXPECT_THAT(error_of(R"({"quantization_config":{"quant_method":4}})"), HasSubstr("quant_method must be a string"));
  EXPECT_THAT(error_of(R"({"quantization_config":{"quant_method":"compressed-tensors","format":5}})"),
              HasSubstr("invalid_file: config.json: \"quantization_config\": \"format\" must be a string, got 5"));
}

}  // namespace
}  // namespace loom::weights
