// In-memory safetensors images and snapshots: an image laid out and filled in memory must read back exactly like the
// same tensors written to disk by SafetensorsWriter and opened through the memory map (the reference), and a
// Snapshot built from it must resolve names, architecture and quantization as Snapshot::open does.

#include "weights/safetensors_image.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "test_files.h"
#include "weights/snapshot.h"

namespace loom::weights {
namespace {

using ::testing::HasSubstr;

std::vector<PlannedTensor> plan() {
  return {{"model.embed_tokens.weight", DType::kBF16, {3, 5}},
          {"model.norm.weight", DType::kF32, {5}},
          {"model.layers.0.mlp.up_proj.weight", DType::kU32, {4, 2}},
          {"odd", DType::kU8, {3}}};
}

// Byte i of tensor t is (t·37 + i) mod 251.
void fill(std::span<std::byte> bytes, size_t t) {
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>((t * 37 + i) % 251);
}

TEST(SafetensorsImage, ReadsBackLikeTheSameTensorsWrittenToDisk) {
  SafetensorsImage image(plan());
  SafetensorsWriter writer;
  for (size_t t = 0; t < image.plan().size(); ++t) {
    fill(image.tensor_bytes(t), t);
    const PlannedTensor& p = image.plan()[t];
    writer.add(p.name, p.dtype, p.shape, image.tensor_bytes(t));
  }
  testing::ScratchDir scratch;
  writer.write(scratch / "reference.safetensors");
  const SafetensorsFile disk = SafetensorsFile::open(scratch / "reference.safetensors");
  const SafetensorsFile memory = image.open("memory/model.safetensors");
  EXPECT_EQ(memory.path(), "memory/model.safetensors");
  ASSERT_EQ(memory.tensors().size(), disk.tensors().size());
  for (const TensorInfo& t : disk.tensors()) {
    const TensorInfo& m = memory.info(t.name);
    EXPECT_EQ(m.dtype, t.dtype) << t.name;
    EXPECT_EQ(m.shape, t.shape) << t.name;
    const auto a = memory.bytes(t.name), b = disk.bytes(t.name);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << t.name;
    const Tensor copy = memory.to_tensor(t.name);
    ASSERT_EQ(copy.bytes(), b.size());
    EXPECT_EQ(std::memcmp(copy.data(), b.data(), b.size()), 0) << t.name;
  }
  EXPECT_EQ(memory.read_f32("model.norm.weight").span<float>().size(), 5u);
}

TEST(SafetensorsImage, AlignedTensorsAreSharedAndOutliveTheFile) {
  SafetensorsImage image({{"a", DType::kF32, {16}}, {"b", DType::kF32, {4}}});
  for (size_t t = 0; t < 2; ++t) fill(image.tensor_bytes(t), t);
  Tensor a, b;
  std::vector<std::byte> expected_a(64), expected_b(16);
  {
    const SafetensorsFile file = image.open("m");
    std::memcpy(expected_a.data(), file.bytes("a").data(), 64);
    std::memcpy(expected_b.data(), file.bytes("b").data(), 16);
    a = file.to_tensor("a");  // starts the data buffer: 64-byte aligned, shared
    b = file.to_tensor("b");  // also at 64 bytes after it
    EXPECT_EQ(a.data(), static_cast<const void*>(file.bytes("a").data()));
  }
  EXPECT_EQ(std::memcmp(a.data(), expected_a.data(), 64), 0);
  EXPECT_EQ(std::memcmp(b.data(), expected_b.data(), 16), 0);
}

TEST(SafetensorsImage, RejectsRepeatedNamesAndASecondOpen) {
  EXPECT_THROW(SafetensorsImage({{"x", DType::kF32, {1}}, {"x", DType::kF32, {1}}}), Error);
  SafetensorsImage image({{"x", DType::kF32, {1}}});
  fill(image.tensor_bytes(0), 0);
  (void)image.open("m");
  EXPECT_THROW(image.open("m"), Error);
}

TEST(SnapshotFromMemory, ResolvesNamesArchitectureAndQuantization) {
  SafetensorsImage image({{"language_model.model.layers.0.mlp.up_proj.weight", DType::kU32, {4, 8}},
                          {"language_model.model.layers.0.mlp.up_proj.scales", DType::kBF16, {4, 1}},
                          {"language_model.model.layers.0.mlp.up_proj.biases", DType::kBF16, {4, 1}}});
  for (size_t t = 0; t < 3; ++t) fill(image.tensor_bytes(t), t);
  std::vector<SafetensorsFile> files;
  files.push_back(image.open("synthetic/m/model.safetensors"));
  const nlohmann::json config = {{"architectures", nlohmann::json::array({"Gemma3ForConditionalGeneration"})},
                                 {"quantization", {{"group_size", 64}, {"bits", 4}}}};
  const Snapshot s = Snapshot::from_memory("synthetic/m", config, std::move(files));
  EXPECT_EQ(s.dir(), "synthetic/m");
  EXPECT_EQ(s.architecture(), "Gemma3ForConditionalGeneration");
  EXPECT_EQ(s.quant_config().base, (QuantSpec{QuantMode::kAffine, 4, 64}));
  // MLX naming in the file, transformers naming in the lookup.
  const auto ref = s.find("model.language_model.layers.0.mlp.up_proj.weight");
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->info->shape, (Shape{4, 8}));
  EXPECT_FALSE(s.tokenizer_json().has_value());
  EXPECT_FALSE(s.chat_template().has_value());
  try {
    (void)s.at("model.missing.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("synthetic/m"));
  }
}

}  // namespace
}  // namespace loom::weights
