// Snapshot loading: the bundled tiny Gemma 3 snapshots (written by tools/reference/make_tiny_snapshot.py with numpy,
// independently of loom), index / glob / missing shard, naming schemes and chat template sources.

#include "weights/snapshot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "test_files.h"
#include "weights/tensor_names.h"

namespace loom::weights {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ScratchDir;

fs::path tiny() {
  return testing::source_dir() / "tests/golden/snapshots/tiny_gemma3";
}
fs::path tiny_sharded() {
  return testing::source_dir() / "tests/golden/snapshots/tiny_gemma3_sharded";
}

// A copy of a snapshot directory the test may modify.
void copy_dir(const fs::path& from, const fs::path& to) {
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

std::vector<float> python_values(const std::string& tensor) {
  // The generator's own tensors, rounded to bf16 by its own rounding, printed exactly (repr of float32 → float).
  const std::string command = "cd '" + (testing::source_dir() / "tools/reference").string() +
                              "' && /usr/bin/python3 -c \"import make_tiny_snapshot as m, numpy as np\n"
                              "a = dict(m.tensors())['" +
                              tensor +
                              "']\n"
                              "b = (m.to_bf16_bits(a).astype(np.uint32) << 16).view(np.float32).ravel()\n"
                              "print(' '.join(repr(float(x)) for x in b))\"";
  FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string out;
  char buffer[4096];
  while (pipe != nullptr && std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  if (pipe != nullptr) {
    EXPECT_EQ(::pclose(pipe), 0) << command;
  }
  std::istringstream in(out);
  std::vector<float> values;
  double v;
  while (in >> v) values.push_back(static_cast<float>(v));
  return values;
}

TEST(Snapshot, OpensTheTinyGemma3Snapshot) {
  const Snapshot s = Snapshot::open(tiny());
  EXPECT_EQ(s.architecture(), "Gemma3ForConditionalGeneration");
  EXPECT_EQ(s.text_config()["hidden_size"], 64);
  ASSERT_NE(s.vision_config(), nullptr);
  EXPECT_EQ((*s.vision_config())["patch_size"], 14);
  EXPECT_EQ(s.audio_config(), nullptr);
  EXPECT_FALSE(s.has_index());
  EXPECT_EQ(s.files().size(), 1u);
  EXPECT_EQ(s.tensor_names().size(), 67u);
  EXPECT_FALSE(s.quant_config().quantized());
  EXPECT_FALSE(s.tokenizer_json().has_value());
  ASSERT_NE(s.tokenizer_config(), nullptr);
  ASSERT_TRUE(s.chat_template().has_value());
  EXPECT_THAT(*s.chat_template(), HasSubstr("<start_of_turn>"));
  EXPECT_EQ(s.chat_template_source(), "tokenizer_config.json");
  ASSERT_NE(s.preprocessor_config(), nullptr);
  EXPECT_EQ((*s.preprocessor_config())["size"]["height"], 28);
  ASSERT_NE(s.generation_config(), nullptr);
  EXPECT_TRUE(s.problems().empty());
}

TEST(Snapshot, TensorValuesMatchTheGenerator) {
  const Snapshot s = Snapshot::open(tiny_sharded());
  for (const std::string name :
       {"language_model.model.layers.1.self_attn.k_proj.weight", "multi_modal_projector.mm_soft_emb_norm.weight"}) {
    const auto ref = s.at(name);
    const Tensor values = ref.file->read_f32(ref.info->name);
    const auto expected = python_values(name);
    ASSERT_EQ(expected.size(), static_cast<size_t>(values.elements())) << name;
    for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(values.span<float>()[i], expected[i]) << name << " " << i;
  }
}

TEST(Snapshot, ShardedWithIndexMatchesSingleFile) {
  const Snapshot single = Snapshot::open(tiny());
  const Snapshot sharded = Snapshot::open(tiny_sharded());
  EXPECT_TRUE(sharded.has_index());
  ASSERT_EQ(sharded.files().size(), 2u);
  ASSERT_EQ(sharded.tensor_names(), single.tensor_names());
  for (const std::string& name : single.tensor_names()) {
    const auto a = single.at(name);
    const auto b = sharded.at(name);
    EXPECT_EQ(a.info->shape, b.info->shape) << name;
    const auto x = a.file->bytes(a.info->name);
    const auto y = b.file->bytes(b.info->name);
    ASSERT_EQ(x.size(), y.size());
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size()), 0) << name;
  }
  EXPECT_EQ(sharded.at("model.vision_tower.vision_model.post_layernorm.weight").file->path().filename(),
            "model-00002-of-00002.safetensors");
}

TEST(Snapshot, GlobsShardsWithoutAnIndex) {
  ScratchDir dir;
  copy_dir(tiny_sharded(), dir.path());
  fs::remove(dir / "model.safetensors.index.json");
  const Snapshot s = Snapshot::open(dir.path());
  EXPECT_FALSE(s.has_index());
  EXPECT_EQ(s.files().size(), 2u);
  EXPECT_EQ(s.tensor_names().size(), 67u);
}

TEST(Snapshot, MissingShardIsAnErrorNamingTheFile) {
  ScratchDir dir;
  copy_dir(tiny_sharded(), dir.path());
  fs::remove(dir / "model-00002-of-00002.safetensors");
  try {
    Snapshot::open(dir.path());
    FAIL() << "opened a snapshot with a missing shard";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_THAT(e.what(), HasSubstr("model-00002-of-00002.safetensors: missing"));
  }
  const Snapshot lenient = Snapshot::open(dir.path(), {.lenient = true});
  ASSERT_EQ(lenient.problems().size(), 1u);
  EXPECT_EQ(lenient.files().size(), 1u);
  EXPECT_TRUE(lenient.find("language_model.model.norm.weight").has_value());
}

TEST(Snapshot, IndexEntryNotInItsFileIsAnError) {
  ScratchDir dir;
  copy_dir(tiny_sharded(), dir.path());
  testing::write_text(dir / "model.safetensors.index.json",
                      R"({"weight_map":{"language_model.model.norm.weight":"model-00002-of-00002.safetensors",)"
                      R"("multi_modal_projector.mm_soft_emb_norm.weight":"model-00002-of-00002.safetensors"}})");
  EXPECT_THROW(
      {
        try {
          Snapshot::open(dir.path());
        } catch (const Error& e) {
          EXPECT_THAT(e.what(), HasSubstr("maps 'language_model.model.norm.weight' to model-00002-of-00002"));
          throw;
        }
      },
      Error);
}

TEST(Snapshot, InvalidShardAndMissingConfigAreCollectedWhenLenient) {
  ScratchDir dir;
  testing::write_bytes(dir / "model.safetensors", "short");
  const Snapshot s = Snapshot::open(dir.path(), {.lenient = true});
  ASSERT_EQ(s.problems().size(), 2u);
  EXPECT_THAT(s.problems()[0], HasSubstr("config.json: missing"));
  EXPECT_THAT(s.problems()[1], HasSubstr("model.safetensors: file has 5 bytes"));
  EXPECT_THROW(Snapshot::open(dir.path()), Error);
  EXPECT_THROW(Snapshot::open(dir / "does-not-exist"), Error);
}

TEST(TensorNames, HubMlxAndTransformersNamingAgree) {
  EXPECT_EQ(canonical_tensor_name("language_model.model.layers.3.mlp.gate_proj.weight"),
            "model.language_model.layers.3.mlp.gate_proj.weight");
  EXPECT_EQ(canonical_tensor_name("model.language_model.layers.3.mlp.gate_proj.weight"),
            "model.language_model.layers.3.mlp.gate_proj.weight");
  EXPECT_EQ(canonical_tensor_name("language_model.lm_head.weight"), "lm_head.weight");
  EXPECT_EQ(canonical_tensor_name("lm_head.weight"), "lm_head.weight");
  EXPECT_EQ(canonical_tensor_name("vision_tower.vision_model.post_layernorm.bias"),
            "model.vision_tower.vision_model.post_layernorm.bias");
  EXPECT_EQ(canonical_tensor_name("multi_modal_projector.mm_input_projection_weight"),
            "model.multi_modal_projector.mm_input_projection_weight");
  EXPECT_EQ(canonical_tensor_name("model.multi_modal_projector.mm_input_projection_weight"),
            "model.multi_modal_projector.mm_input_projection_weight");
  EXPECT_EQ(canonical_tensor_name("model.layers.0.self_attn.q_proj.weight"), "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(canonical_tensor_name("visual.blocks.0.attn.qkv.weight"), "model.visual.blocks.0.attn.qkv.weight");
  EXPECT_EQ(canonical_tensor_name("vision_towerx.a"), "vision_towerx.a");
}

TEST(Snapshot, BothNamingSchemesResolve) {
  const float one[1] = {1.0f};
  const auto bytes = std::as_bytes(std::span(one));
  for (const bool transformers5 : {false, true}) {
    ScratchDir dir;
    testing::write_text(dir / "config.json", R"({"model_type":"gemma3"})");
    SafetensorsWriter w;
    if (transformers5) {
      w.add("model.language_model.layers.0.input_layernorm.weight", DType::kF32, {1}, bytes);
      w.add("model.vision_tower.vision_model.post_layernorm.weight", DType::kF32, {1}, bytes);
      w.add("model.multi_modal_projector.mm_soft_emb_norm.weight", DType::kF32, {1}, bytes);
      w.add("lm_head.weight", DType::kF32, {1}, bytes);
    } else {
      w.add("language_model.model.layers.0.input_layernorm.weight", DType::kF32, {1}, bytes);
      w.add("vision_tower.vision_model.post_layernorm.weight", DType::kF32, {1}, bytes);
      w.add("multi_modal_projector.mm_soft_emb_norm.weight", DType::kF32, {1}, bytes);
      w.add("language_model.lm_head.weight", DType::kF32, {1}, bytes);
    }
    w.write(dir / "model.safetensors");
    const Snapshot s = Snapshot::open(dir.path());
    EXPECT_EQ(s.architecture(), "gemma3");  // model_type when architectures is absent
    for (const char* name :
         {"model.language_model.layers.0.input_layernorm.weight",
          "language_model.model.layers.0.input_layernorm.weight",
          "model.vision_tower.vision_model.post_layernorm.weight", "vision_tower.vision_model.post_layernorm.weight",
          "model.multi_modal_projector.mm_soft_emb_norm.weight", "multi_modal_projector.mm_soft_emb_norm.weight",
          "lm_head.weight", "language_model.lm_head.weight"}) {
      EXPECT_TRUE(s.find(name).has_value()) << name << (transformers5 ? " in transformers-5 naming" : " in Hub naming");
    }
    EXPECT_EQ(s.at("lm_head.weight").info->name, transformers5 ? "lm_head.weight" : "language_model.lm_head.weight");
    EXPECT_THROW(s.at("model.norm.weight"), Error);
  }
}

TEST(Snapshot, SameTensorUnderTwoNamingsIsAProblem) {
  ScratchDir dir;
  testing::write_text(dir / "config.json", R"({"architectures":["X"]})");
  const float one[1] = {1.0f};
  SafetensorsWriter a, b;
  a.add("language_model.model.norm.weight", DType::kF32, {1}, std::as_bytes(std::span(one)));
  b.add("model.language_model.norm.weight", DType::kF32, {1}, std::as_bytes(std::span(one)));
  a.write(dir / "a.safetensors");
  b.write(dir / "b.safetensors");
  EXPECT_THROW(Snapshot::open(dir.path()), Error);
}

// A snapshot with only config.json + one tensor, for the chat-template cases.
void minimal(const ScratchDir& dir) {
  testing::write_text(dir / "config.json", R"({"architectures":["Gemma3ForCausalLM"]})");
  const float one[1] = {1.0f};
  SafetensorsWriter w;
  w.add("model.norm.weight", DType::kF32, {1}, std::as_bytes(std::span(one)));
  w.write(dir / "model.safetensors");
}

TEST(Snapshot, ChatTemplateFromEachSource) {
  {
    ScratchDir dir;
    minimal(dir);
    testing::write_text(dir / "tokenizer_config.json",
                        R"({"chat_template":[{"name":"tool_use","template":"T"},{"name":"default","template":"D"}]})");
    testing::write_text(dir / "chat_template.jinja", "J");
    const Snapshot s = Snapshot::open(dir.path());
    EXPECT_EQ(s.chat_template(), "D");  // tokenizer_config.json wins
    EXPECT_EQ(s.chat_template_source(), "tokenizer_config.json");
  }
  {
    ScratchDir dir;
    minimal(dir);
    testing::write_text(dir / "tokenizer_config.json", R"({"bos_token":"<bos>"})");
    testing::write_text(dir / "chat_template.jinja", "{{ messages }}\n");
    testing::write_text(dir / "chat_template.json", R"({"chat_template":"from json"})");
    const Snapshot s = Snapshot::open(dir.path());
    EXPECT_EQ(s.chat_template(), "{{ messages }}\n");
    EXPECT_EQ(s.chat_template_source(), "chat_template.jinja");
  }
  {
    ScratchDir dir;
    minimal(dir);
    testing::write_text(dir / "chat_template.json", R"({"chat_template":"from json"})");
    testing::write_text(dir / "processor_config.json", R"({"image_seq_length":256})");
    const Snapshot s = Snapshot::open(dir.path());
    EXPECT_EQ(s.chat_template(), "from json");
    EXPECT_EQ(s.chat_template_source(), "chat_template.json");
    ASSERT_NE(s.preprocessor_config(), nullptr);  // processor_config.json as the fallback
    EXPECT_EQ((*s.preprocessor_config())["image_seq_length"], 256);
    EXPECT_EQ(&s.text_config(), &s.config());  // text-only: the top level is the text config
  }
  {
    ScratchDir dir;
    minimal(dir);
    testing::write_text(dir / "tokenizer_config.json", R"({"chat_template":[{"name":"rag","template":"R"}]})");
    EXPECT_THROW(Snapshot::open(dir.path()), Error);
    const Snapshot s = Snapshot::open(dir.path(), {.lenient = true});
    EXPECT_FALSE(s.chat_template().has_value());
    ASSERT_EQ(s.problems().size(), 1u);
    EXPECT_THAT(s.problems()[0], HasSubstr("no \"default\" entry"));
  }
}

}  // namespace
}  // namespace loom::weights
