#pragma once
// Helpers for the Gemma 4 golden tests: reading the images the reference model saw, and the quantized-vs-dequantized
// comparison (quantize a float snapshot with loom's quantizer, decode every quantized weight back to float32 with
// loom's dequantizers into a second snapshot, and run both).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/families/gemma4.h"
#include "model/weight_loader.h"
#include "model_test_util.h"
#include "weights/quantize_policy.h"
#include "weights/safetensors.h"
#include "weights/snapshot.h"
#include "weights/snapshot_quantizer.h"

namespace loom::model::testing {

inline bool gemma4_can_encode_images(const Model& model) {
  const auto* gemma4 = dynamic_cast<const Gemma4Model*>(&model);
  return gemma4 != nullptr && gemma4->has_vision_tower();
}

// One image of a golden case: pixels F32 [patches, patch_dim], positions I64 [patches, 2].
inline ImagePixels read_gemma4_image(const std::filesystem::path& dir, const nlohmann::json& spec, int64_t patch_dim) {
  const int64_t patches = spec["patches"].get<int64_t>();
  ImagePixels image;
  const std::vector<float> pixels = read_f32_file(dir / spec["pixels_file"].get<std::string>());
  EXPECT_EQ(static_cast<int64_t>(pixels.size()), patches * patch_dim);
  image.pixel_values = Tensor::zeros(DType::kF32, {patches, patch_dim});
  std::copy(pixels.begin(), pixels.end(), image.pixel_values.data_as<float>());
  std::ifstream in(dir / spec["positions_file"].get<std::string>(), std::ios::binary);
  image.position_ids = Tensor::zeros(DType::kI64, {patches, 2});
  in.read(static_cast<char*>(image.position_ids.data()), static_cast<std::streamsize>(image.position_ids.bytes()));
  EXPECT_TRUE(in.good());
  image.soft_tokens = spec["soft_tokens"].get<int64_t>();
  return image;
}

struct QuantizedPair {
  std::filesystem::path quantized, dequantized;
};

// `mode` is "affine-4", "affine-8", "mxfp4", "mxfp8" or "nvfp4" (MLX default group sizes; affine g64).
inline QuantizedPair quantize_and_dequantize(const std::filesystem::path& model, const std::filesystem::path& work,
                                             const std::string& mode) {
  const bool affine = mode.starts_with("affine");
  const weights::QuantSpec spec = weights::resolve_quant_spec(
      affine ? "affine" : mode, affine ? std::optional<int>(std::stoi(mode.substr(7))) : std::nullopt, std::nullopt);
  QuantizedPair pair{work / "quantized", work / "dequantized"};
  weights::quantize_snapshot(model, pair.quantized, {.spec = spec});

  const weights::Snapshot q = weights::Snapshot::open(pair.quantized);
  const WeightLoader loader(q);
  weights::SafetensorsWriter writer;
  for (const std::string& name : q.tensor_names()) {
    const weights::TensorRef ref = q.at(name);
    const auto module_of = [&](std::string_view suffix) { return name.substr(0, name.size() - suffix.size()); };
    if ((name.ends_with(".scales") || name.ends_with(".biases")) && q.find(module_of(".scales") + ".weight")) {
      continue;  // folded into the dequantized weight
    }
    if (name.ends_with(".weight") && q.find(module_of(".weight") + ".scales")) {
      const weights::QuantSpec s = q.quant_config().spec_for(module_of(".weight"), true);
      const Shape logical{ref.info->shape[0], ref.info->shape[1] * 32 / s.bits};
      writer.add(name, loader.f32(name, logical));
      continue;
    }
    writer.add(name, ref.file->read_f32(ref.info->name));
  }
  std::filesystem::create_directories(pair.dequantized);
  writer.write(pair.dequantized / "model.safetensors");
  nlohmann::json config = q.config();
  config.erase("quantization");
  config.erase("quantization_config");
  std::ofstream(pair.dequantized / "config.json") << config.dump(1);
  std::filesystem::copy_file(pair.quantized / "generation_config.json", pair.dequantized / "generation_config.json");
  return pair;
}

// Prefill logits at every position within `tolerance` (per-row max|a − b| / max|b|), then `steps` greedy tokens that
// must agree, each decode step's logits within tolerance too.
inline void expect_same_run(Model& a, Model& b, const std::vector<int32_t>& prompt, int steps, double tolerance,
                            const std::string& name) {
  const int64_t vocab = a.info().vocab_size;
  SequenceRunner ra(a, static_cast<int64_t>(prompt.size()) + steps), rb(b, static_cast<int64_t>(prompt.size()) + steps);
  Tensor la = ra.step(prompt, {}, true), lb = rb.step(prompt, {}, true);
  for (int step = 0;; ++step) {
    for (int64_t r = 0; r < la.dim(0); ++r) {
      EXPECT_LE(row_relative_error(la.data_as<float>() + r * vocab, lb.data_as<float>() + r * vocab, vocab), tolerance)
          << name << " step " << step << " row " << r;
    }
    const float* last_a = la.data_as<float>() + (la.dim(0) - 1) * vocab;
    const float* last_b = lb.data_as<float>() + (lb.dim(0) - 1) * vocab;
    const auto ta = static_cast<int32_t>(std::max_element(last_a, last_a + vocab) - last_a);
    const auto tb = static_cast<int32_t>(std::max_element(last_b, last_b + vocab) - last_b);
    ASSERT_EQ(ta, tb) << name << " greedy step " << step;
    if (step + 1 == steps) break;
    la = ra.step({ta}, {}, false);
    lb = rb.step({tb}, {}, false);
  }
}

}  // namespace loom::model::testing
