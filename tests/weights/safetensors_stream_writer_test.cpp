// The streaming writer produces exactly the file image SafetensorsWriter builds in memory for the same tensors, and
// refuses writes that stray from its plan.

#include "weights/safetensors_stream_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "core/error.h"
#include "test_files.h"
#include "weights/safetensors.h"

namespace loom::weights {
namespace {

using testing::ScratchDir;

std::vector<std::byte> pattern(size_t n, int seed) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 31 + static_cast<size_t>(seed)) & 0xFF);
  return out;
}

TEST(SafetensorsStreamWriter, WritesTheSameImageAsTheInMemoryWriter) {
  const std::vector<PlannedTensor> plan = {{"b.weight", DType::kU32, {3, 5}},
                                           {"a.scales", DType::kBF16, {3, 1}},
                                           {"empty", DType::kF32, {0, 4}},
                                           {"c", DType::kU8, {7}}};
  SafetensorsWriter reference;
  reference.set_metadata("format", "mlx");
  ScratchDir dir;
  SafetensorsStreamWriter writer(dir / "x.safetensors", plan, {{"format", "mlx"}});
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto data = pattern(plan[i].bytes(), static_cast<int>(i));
    reference.add(plan[i].name, plan[i].dtype, plan[i].shape, data);
    writer.write(plan[i].name, data);
  }
  writer.finish();
  const auto expected = reference.serialize();
  std::ifstream in(dir / "x.safetensors", std::ios::binary);
  const std::vector<char> actual{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ASSERT_EQ(actual.size(), expected.size());
  EXPECT_EQ(writer.file_size(), expected.size());
  EXPECT_TRUE(std::equal(actual.begin(), actual.end(), expected.begin(),
                         [](char a, std::byte b) { return static_cast<std::byte>(a) == b; }));
  const SafetensorsFile file = SafetensorsFile::open(dir / "x.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "mlx");
  EXPECT_EQ(file.info("c").shape, (Shape{7}));
}

TEST(SafetensorsStreamWriter, RefusesWritesOutsideThePlan) {
  ScratchDir dir;
  SafetensorsStreamWriter writer(dir / "x.safetensors", {{"a", DType::kF32, {2}}, {"b", DType::kU8, {3}}}, {});
  EXPECT_THROW(writer.write("b", pattern(3, 0)), Error);  // out of order
  EXPECT_THROW(writer.write("a", pattern(4, 0)), Error);  // wrong size
  writer.write("a", pattern(8, 0));
  EXPECT_THROW(writer.finish(), Error);  // "b" missing
  EXPECT_THROW(SafetensorsStreamWriter(dir / "y.safetensors", {{"a", DType::kU8, {1}}, {"a", DType::kU8, {1}}}, {}),
               Error);
  EXPECT_THROW(SafetensorsStreamWriter(dir / "no" / "such" / "dir.safetensors", {}, {}), Error);
}

}  // namespace
}  // namespace loom::weights
