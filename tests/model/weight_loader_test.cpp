// WeightLoader: float matrices keep their stored dtype and bytes, vectors become F32, MLX-quantized modules load as
// packed Weights (checked against the float matrix they were quantized from, through the shared dequantizer), layout
// conversions (transposed projection, channels-last patch conv) put each element where the reference reads it, and
// every missing or misshapen tensor is a kInvalidFile error naming file, tensor, expected and found shapes.
#include "model/weight_loader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <tuple>

#include "core/float_formats.h"
#include "model_test_util.h"
#include "weights/quant/quantize.h"
#include "weights/safetensors.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;
using weights::QuantMode;
using weights::QuantSpec;

std::vector<float> random_values(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

Tensor bf16_tensor(const std::vector<float>& values, Shape shape) {
  Tensor t = Tensor::zeros(DType::kBF16, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.data_as<uint16_t>()[i] = float_to_bf16(values[i]);
  return t;
}

void add_weight(weights::SafetensorsWriter& writer, const std::string& module, const weights::Weight& w) {
  writer.add(module + ".weight", w.values);
  writer.add(module + ".scales", w.scales);
  if (!w.biases.empty()) writer.add(module + ".biases", w.biases);
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

TEST(WeightLoader, MlxQuantizedModulesLoadPacked) {
  std::mt19937 rng(7);
  constexpr int64_t kRows = 8, kCols = 64;
  const std::vector<float> gate = random_values(rng, kRows * kCols);
  const std::vector<float> down = random_values(rng, kRows * kCols);
  const QuantSpec affine4{QuantMode::kAffine, 4, 32};
  const QuantSpec mxfp4{QuantMode::kMxfp4, 4, 32};
  const weights::Weight gate_q = weights::quant::quantize(gate.data(), kRows, kCols, affine4);
  const weights::Weight down_q = weights::quant::quantize(down.data(), kRows, kCols, mxfp4);

  testing::ScratchDir dir;
  const json config = {
      {"architectures", {"Gemma3ForConditionalGeneration"}},
      {"quantization",
       {{"group_size", 32},
        {"bits", 4},
        {"language_model.model.layers.0.mlp.down_proj", {{"mode", "mxfp4"}, {"group_size", 32}, {"bits", 4}}}}}};
  std::ofstream(dir.path() / "config.json") << config.dump();
  weights::SafetensorsWriter writer;
  add_weight(writer, "language_model.model.layers.0.mlp.gate_proj", gate_q);
  add_weight(writer, "language_model.model.layers.0.mlp.down_proj", down_q);
  writer.add("language_model.model.layers.0.mlp.up_proj.weight", bf16_tensor(gate, {kRows, kCols}));
  writer.write(dir.path() / "model.safetensors");
  const weights::Snapshot snapshot = weights::Snapshot::open(dir.path());
  const WeightLoader loader(snapshot);

  for (const auto& [module, original, source, spec] :
       {std::tuple{"model.language_model.layers.0.mlp.gate_proj", &gate, &gate_q, affine4},
        std::tuple{"model.language_model.layers.0.mlp.down_proj", &down, &down_q, mxfp4}}) {
    const weights::Weight w = loader.matrix(module, kRows, kCols);
    EXPECT_EQ(w.quant, spec) << module;
    EXPECT_EQ(w.rows, kRows);
    EXPECT_EQ(w.cols, kCols);
    ASSERT_EQ(w.values.bytes(), source->values.bytes());
    EXPECT_EQ(std::memcmp(w.values.data(), source->values.data(), w.values.bytes()), 0) << module;
    std::vector<float> decoded(static_cast<size_t>(kRows * kCols));
    weights::quant::dequantize_rows(w, 0, kRows, decoded.data());
    // Against the float input: 4-bit codes are within a step of it (affine: scale ≈ range/15; mxfp4: ≤ 2·scale·…).
    for (int64_t r = 0; r < kRows; ++r) {
      float amax = 0;
      for (int64_t c = 0; c < kCols; ++c) amax = std::max(amax, std::abs((*original)[r * kCols + c]));
      for (int64_t c = 0; c < kCols; ++c) {
        EXPECT_NEAR(decoded[r * kCols + c], (*original)[r * kCols + c], amax / 3) << module << " " << r << "," << c;
      }
    }
  }
  // A quantized table asked for as F32 is decoded once, exactly as the shared dequantizer decodes it.
  const Tensor table = loader.f32("model.language_model.layers.0.mlp.gate_proj.weight", {kRows, kCols});
  std::vector<float> reference(static_cast<size_t>(kRows * kCols));
  weights::quant::dequantize_rows(gate_q, 0, kRows, reference.data());
  ASSERT_EQ(table.dtype(), DType::kF32);
  EXPECT_EQ(std::vector<float>(table.data_as<float>(), table.data_as<float>() + table.elements()), reference);

  // A float module in a quantized snapshot (no scales) stays float, in its stored dtype.
  const weights::Weight up = loader.matrix("model.language_model.layers.0.mlp.up_proj", kRows, kCols);
  EXPECT_EQ(up.quant.mode, QuantMode::kNone);
  EXPECT_EQ(up.values.dtype(), DType::kBF16);

  // Scales of the wrong shape are named with both shapes.
  const std::string message =
      error_of([&] { (void)loader.matrix("model.language_model.layers.0.mlp.gate_proj", kRows * 2, kCols); },
               ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("gate_proj"), std::string::npos) << message;
  EXPECT_NE(message.find("[8, 8]"), std::string::npos) << message;   // found packed shape
  EXPECT_NE(message.find("[16, 8]"), std::string::npos) << message;  // expected
}

TEST(WeightLoader, FloatLayoutsAndVectors) {
  std::mt19937 rng(11);
  testing::ScratchDir dir;
  std::ofstream(dir.path() / "config.json") << R"({"architectures": ["Gemma3ForConditionalGeneration"]})";
  const std::vector<float> proj = random_values(rng, 3 * 5);          // stored [in 3, out 5]
  const std::vector<float> conv = random_values(rng, 4 * 2 * 2 * 3);  // MLX [out 4, py 2, px 2, in 3]
  const std::vector<float> norm = random_values(rng, 5);
  weights::SafetensorsWriter writer;
  writer.add("multi_modal_projector.mm_input_projection_weight", bf16_tensor(proj, {3, 5}));
  writer.add("vision_tower.vision_model.embeddings.patch_embedding.weight", bf16_tensor(conv, {4, 2, 2, 3}));
  writer.add("language_model.model.norm.weight", bf16_tensor(norm, {5}));
  writer.write(dir.path() / "model.safetensors");
  const weights::Snapshot snapshot = weights::Snapshot::open(dir.path());
  const WeightLoader loader(snapshot);

  const weights::Weight t = loader.matrix_transposed("model.multi_modal_projector.mm_input_projection_weight", 5, 3);
  ASSERT_EQ(t.values.shape(), (Shape{5, 3}));
  ASSERT_EQ(t.values.dtype(), DType::kBF16);
  for (int o = 0; o < 5; ++o) {
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(t.values.data_as<uint16_t>()[o * 3 + i], float_to_bf16(proj[static_cast<size_t>(i * 5 + o)]));
    }
  }

  const weights::Weight p =
      loader.patch_embedding("model.vision_tower.vision_model.embeddings.patch_embedding.weight", 4, 3, 2);
  ASSERT_EQ(p.values.shape(), (Shape{4, 12}));
  for (int o = 0; o < 4; ++o) {
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < 2; ++y) {
        for (int x = 0; x < 2; ++x) {
          EXPECT_EQ(p.values.data_as<uint16_t>()[o * 12 + (c * 2 + y) * 2 + x],
                    float_to_bf16(conv[static_cast<size_t>(((o * 2 + y) * 2 + x) * 3 + c)]));
        }
      }
    }
  }

  const Tensor n = loader.f32("model.language_model.norm.weight", {5});
  ASSERT_EQ(n.dtype(), DType::kF32);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(n.data_as<float>()[i], bf16_to_float(float_to_bf16(norm[i])));

  std::string message =
      error_of([&] { (void)loader.f32("model.language_model.norm.weight", {6}); }, ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("language_model.model.norm.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("[5]"), std::string::npos) << message;
  EXPECT_NE(message.find("[6]"), std::string::npos) << message;

  message = error_of([&] { (void)loader.matrix("model.language_model.layers.0.self_attn.q_proj", 4, 4); },
                     ErrorKind::kInvalidFile);
  EXPECT_NE(message.find("model.language_model.layers.0.self_attn.q_proj.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
  EXPECT_NE(message.find("[4, 4]"), std::string::npos) << message;
}

}  // namespace
}  // namespace loom::model
