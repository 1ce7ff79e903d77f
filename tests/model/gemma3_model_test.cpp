// Gemma 3 loading paths around the golden snapshot: the text-only Gemma3ForCausalLM layout (text tensors under
// model.*, config at the top level) built from the tiny VLM's own text weights must reproduce the reference logits of
// the text-only case; broken snapshots fail with errors that name the tensor; unknown architectures are refused with
// the supported list.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "model/families/gemma3.h"
#include "model/registry.h"
#include "model_test_util.h"
#include "weights/safetensors.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

std::filesystem::path tiny() {
  return testing::golden_dir() / "tiny_gemma3_vlm";
}

json read_json(const std::filesystem::path& path) {
  return json::parse(std::ifstream(path));
}

// Copies the tiny snapshot's tensors through `edit` (return false to drop one; it may rename or replace) into dir.
void write_edited(const std::filesystem::path& dir, const json& config,
                  const std::function<bool(std::string&, Tensor&)>& edit) {
  std::ofstream(dir / "config.json") << config.dump();
  const weights::SafetensorsFile file = weights::SafetensorsFile::open(tiny() / "model.safetensors");
  weights::SafetensorsWriter writer;
  for (const weights::TensorInfo& info : file.tensors()) {
    std::string name = info.name;
    Tensor tensor = file.to_tensor(info.name);
    if (edit(name, tensor)) writer.add(name, tensor);
  }
  writer.write(dir / "model.safetensors");
}

std::string load_error(const std::filesystem::path& dir, ErrorKind kind) {
  const weights::Snapshot snapshot = weights::Snapshot::open(dir);
  backend::cpu::CpuBackend backend;
  try {
    (void)load_model(snapshot, backend);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "loaded without error";
  return "";
}

TEST(Gemma3Model, TextOnlyCausalLmMatchesTheReference) {
  testing::ScratchDir dir;
  json config = read_json(tiny() / "config.json")["text_config"];
  config["architectures"] = {"Gemma3ForCausalLM"};
  config["eos_token_id"] = {1, 106};
  write_edited(dir.path(), config, [](std::string& name, Tensor&) {
    const std::string prefix = "language_model.model.";
    if (!name.starts_with(prefix)) return false;  // no vision tower, no projector
    name = "model." + name.substr(prefix.size());
    return true;
  });
  const weights::Snapshot snapshot = weights::Snapshot::open(dir.path());
  backend::cpu::CpuBackend backend;
  const std::unique_ptr<Model> model = load_model(snapshot, backend);
  EXPECT_EQ(model->info().architecture, "Gemma3ForCausalLM");
  EXPECT_EQ(model->info().image_token_id, -1);
  EXPECT_FALSE(model->info().bidirectional_images);
  EXPECT_EQ(model->info().stop_ids, (std::vector<int32_t>{1, 106}));
  EXPECT_THROW(model->encode_image({}), Error);

  // The text-only case of the VLM fixture has no image tokens: the decoder alone computes its logits.
  const json cases = read_json(testing::golden_dir() / "tiny_gemma3_vlm_expected/cases.json");
  const json& c = cases["cases"][0];
  ASSERT_EQ(c["num_images"], 0);
  const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const std::vector<float> expected =
      testing::read_f32_file(testing::golden_dir() / "tiny_gemma3_vlm_expected" / c["logits_file"].get<std::string>());
  testing::SequenceRunner runner(*model, static_cast<int64_t>(prompt.size()));
  const Tensor logits = runner.step(prompt, {}, false);  // last row only
  const int64_t vocab = 512;
  ASSERT_EQ(logits.shape(), (Shape{1, vocab}));
  EXPECT_LE(testing::row_relative_error(logits.data_as<float>(),
                                        expected.data() + (static_cast<int64_t>(prompt.size()) - 1) * vocab, vocab),
            1e-4);
}

TEST(Gemma3Model, MissingTensorIsNamed) {
  testing::ScratchDir dir;
  write_edited(dir.path(), read_json(tiny() / "config.json"),
               [](std::string& name, Tensor&) { return name != "language_model.model.layers.3.mlp.up_proj.weight"; });
  const std::string message = load_error(dir.path(), ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("model.language_model.layers.3.mlp.up_proj.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
  EXPECT_NE(message.find("[128, 64]"), std::string::npos) << message;
}

TEST(Gemma3Model, WrongShapeIsNamedWithBothShapes) {
  testing::ScratchDir dir;
  write_edited(dir.path(), read_json(tiny() / "config.json"), [](std::string& name, Tensor& tensor) {
    if (name == "language_model.model.layers.1.self_attn.k_proj.weight") tensor = tensor.reshaped({64, 32});
    return true;
  });
  const std::string message = load_error(dir.path(), ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("layers.1.self_attn.k_proj.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("[64, 32]"), std::string::npos) << message;  // found
  EXPECT_NE(message.find("[32, 64]"), std::string::npos) << message;  // expected
}

TEST(Gemma3Model, MissingVisionTowerIsNamed) {
  testing::ScratchDir dir;
  write_edited(dir.path(), read_json(tiny() / "config.json"),
               [](std::string& name, Tensor&) { return !name.starts_with("vision_tower."); });
  const std::string message = load_error(dir.path(), ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("patch_embedding"), std::string::npos) << message;
}

TEST(Gemma3EmbeddingScale, RoundedToTheEmbeddingDtype) {
  weights::Weight embed;
  embed.values = Tensor::zeros(DType::kBF16, {1, 1});
  EXPECT_EQ(gemma3_embedding_scale(embed, 2560), 50.5f);  // models.md §1.2
  EXPECT_EQ(gemma3_embedding_scale(embed, 3072), 55.5f);  // transformers' comment: 55.4256 → 55.5
  embed.values = Tensor::zeros(DType::kF32, {1, 1});
  EXPECT_EQ(gemma3_embedding_scale(embed, 2560), static_cast<float>(std::sqrt(2560.0)));
  embed.values = Tensor::zeros(DType::kF16, {1, 1});
  EXPECT_EQ(gemma3_embedding_scale(embed, 2560), 50.59375f);  // f16 steps of 1/32 between 32 and 64
  embed.quant = {weights::QuantMode::kAffine, 4, 64};
  embed.scales = Tensor::zeros(DType::kBF16, {1, 1});
  EXPECT_EQ(gemma3_embedding_scale(embed, 2560), 50.5f);
}

TEST(Registry, UnknownArchitectureListsSupported) {
  testing::ScratchDir dir;
  write_edited(dir.path(), {{"architectures", {"LlamaForCausalLM"}}}, [](std::string&, Tensor&) { return true; });
  const std::string message = load_error(dir.path(), ErrorKind::kUnsupported);
  EXPECT_NE(message.find("LlamaForCausalLM"), std::string::npos) << message;
  EXPECT_NE(message.find("Gemma3ForConditionalGeneration"), std::string::npos) << message;
  EXPECT_NE(message.find("Gemma3ForCausalLM"), std::string::npos) << message;
}

}  // namespace
}  // namespace loom::model
