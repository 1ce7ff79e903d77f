// `loom info` run as a process on the bundled tiny snapshot and on hand-built quantized snapshots; parameter counts
// are checked against the formulas of the model shapes, not against loom's own earlier output.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <vector>

#include "test_files.h"
#include "weights/safetensors.h"

namespace loom::weights {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::ScratchDir;

struct InfoRun {
  int status = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

InfoRun run_info(const std::filesystem::path& dir, bool as_json) {
  ScratchDir scratch;
  const auto err_path = scratch / "stderr";
  const std::string command = std::string(LOOM_BINARY) + " info --model '" + dir.string() + "'" +
                              (as_json ? " --json" : "") + " 2>'" + err_path.string() + "'";
  InfoRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) run.out += buffer;
  const int status = ::pclose(pipe);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  run.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return run;
}

TEST(InfoCommand, DescribesTheTinyGemma3Snapshot) {
  const auto dir = testing::source_dir() / "tests/golden/snapshots/tiny_gemma3_sharded";
  const InfoRun run = run_info(dir, true);
  ASSERT_EQ(run.status, 0) << run.out;
  const json r = json::parse(run.out);
  // Shapes from the generator's config: text hidden 64, 2 layers, 4×16 q, 2×16 kv, intermediate 32, vocab 256;
  // vision hidden 32, 2 layers, intermediate 32, patch 14 on 28×28 (4 positions).
  const int64_t h = 64, q = 64, kv = 32, inter = 32, vocab = 256, head = 16;
  const int64_t text_layer = 4 * h + q * h + 2 * kv * h + h * q + 2 * head + 3 * inter * h;
  const int64_t text = vocab * h + 2 * text_layer + h;
  const int64_t vh = 32, vi = 32;
  const int64_t vision_layer = 4 * vh + 4 * (vh * vh + vh) + (vi * vh + vi) + (vh * vi + vh);
  const int64_t vision = (vh * 3 * 14 * 14 + vh) + 4 * vh + 2 * vision_layer + 2 * vh + (vh + vh * h);
  EXPECT_EQ(r["architecture"], "Gemma3ForConditionalGeneration");
  EXPECT_EQ(r["submodels"]["text"]["parameters"], text);
  EXPECT_EQ(r["submodels"]["vision"]["parameters"], vision);
  EXPECT_EQ(r["parameters"], text + vision);
  EXPECT_EQ(r["bytes_by_dtype"]["BF16"], 2 * (text + vision));
  EXPECT_FALSE(r["submodels"].contains("audio"));
  EXPECT_EQ(r["files"].size(), 2u);
  EXPECT_EQ(r["indexed"], true);
  EXPECT_EQ(r["quantization"]["source"], "none");
  EXPECT_EQ(r["tokenizer"], false);
  EXPECT_EQ(r["chat_template"], "tokenizer_config.json");
  EXPECT_EQ(r["preprocessor_config"], true);
  EXPECT_EQ(r["generation_config"], true);
  EXPECT_TRUE(r["problems"].empty());

  const InfoRun text_run = run_info(dir, false);
  EXPECT_EQ(text_run.status, 0);
  EXPECT_THAT(text_run.out, HasSubstr("architecture  Gemma3ForConditionalGeneration"));
  EXPECT_THAT(text_run.out, HasSubstr("problems      none"));
}

// Writes an MLX-style affine snapshot: rows × cols Linear layers packed as U32 with bf16 scales/biases.
void add_quantized(SafetensorsWriter& w, const std::string& module, int64_t rows, int64_t cols, int bits, int group,
                   bool with_biases = true) {
  const std::vector<std::byte> packed(static_cast<size_t>(rows * cols * bits / 8));
  const std::vector<std::byte> scales(static_cast<size_t>(rows * cols / group * 2));
  w.add(module + ".weight", DType::kU32, {rows, cols * bits / 32}, packed);
  w.add(module + ".scales", DType::kBF16, {rows, cols / group}, scales);
  if (with_biases) w.add(module + ".biases", DType::kBF16, {rows, cols / group}, scales);
}

TEST(InfoCommand, SummarisesMlxQuantization) {
  ScratchDir dir;
  testing::write_text(dir / "config.json", R"({"architectures":["Gemma3ForCausalLM"],"num_hidden_layers":1,
      "quantization":{"group_size":64,"bits":4,"model.layers.0.mlp.gate_proj":{"group_size":32,"bits":8},
                      "model.layers.0.mlp.up_proj":false}})");
  SafetensorsWriter w;
  add_quantized(w, "model.embed_tokens", 256, 128, 4, 64);
  add_quantized(w, "model.layers.0.self_attn.q_proj", 128, 128, 4, 64);
  add_quantized(w, "model.layers.0.mlp.gate_proj", 64, 128, 8, 32);
  const std::vector<std::byte> up(64 * 128 * 2), norm(128 * 2);
  w.add("model.layers.0.mlp.up_proj.weight", DType::kBF16, {64, 128}, up);
  w.add("model.layers.0.input_layernorm.weight", DType::kBF16, {128}, norm);
  w.write(dir / "model.safetensors");

  const InfoRun run = run_info(dir.path(), true);
  ASSERT_EQ(run.status, 0) << run.out;
  const json r = json::parse(run.out);
  EXPECT_EQ(r["parameters"], 256 * 128 + 128 * 128 + 64 * 128 + 64 * 128 + 128);
  const json& q = r["quantization"];
  EXPECT_EQ(q["source"], "mlx");
  EXPECT_EQ(q["mode"], "affine-4/g64");
  EXPECT_EQ(q["bits"], 4);
  EXPECT_EQ(q["group_size"], 64);
  EXPECT_EQ(q["quantized_modules"], 3);
  EXPECT_EQ(q["overrides"]["model.layers.0.mlp.gate_proj"], "affine-8/g32");
  EXPECT_EQ(q["overrides"]["model.layers.0.mlp.up_proj"], "float");
  EXPECT_EQ(q["float_modules"], json::array({"model.layers.*.mlp.up_proj"}));
  EXPECT_EQ(r["bytes_by_dtype"]["U32"], (256 * 128 + 128 * 128) / 2 + 64 * 128);
}

TEST(InfoCommand, ReportsEveryProblemAndFails) {
  ScratchDir dir;
  testing::write_text(dir / "config.json", R"({"architectures":["X"],"num_hidden_layers":3,
                                              "quantization":{"group_size":64,"bits":4}})");
  SafetensorsWriter w;
  add_quantized(w, "model.layers.0.mlp.up_proj", 64, 128, 4, 64, /*with_biases=*/false);
  add_quantized(w, "model.layers.1.mlp.up_proj", 64, 128, 8, 64);  // packed for 8 bits, config says 4
  w.write(dir / "model-00001-of-00002.safetensors");
  testing::write_bytes(dir / "model-00002-of-00002.safetensors", testing::safetensors_image("[]", ""));
  const InfoRun run = run_info(dir.path(), true);
  EXPECT_EQ(run.status, 1);
  const json r = json::parse(run.out);
  const auto problems = r["problems"].dump();
  EXPECT_THAT(problems, HasSubstr("model-00002-of-00002.safetensors: header must be a JSON object"));
  EXPECT_THAT(problems, HasSubstr("affine quantization needs 'model.layers.0.mlp.up_proj.biases'"));
  EXPECT_THAT(problems, HasSubstr("model.layers.1.mlp.up_proj.weight': packed width 32 holds 256 4-bit values per row "
                                  "but the scales cover 128"));
  EXPECT_THAT(problems, HasSubstr("num_hidden_layers is 3 but the weights hold 2 decoder layers"));
  EXPECT_EQ(r["problems"].size(), 4u);
  EXPECT_THAT(run.err, HasSubstr("is not usable"));

  const InfoRun missing = run_info(dir / "nope", false);
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.err, HasSubstr("nope: not a directory"));
}

}  // namespace
}  // namespace loom::weights
