// The Qwen3-VL vision tower against Hugging Face transformers (float32, eager attention) on a tiny random snapshot:
// tests/golden/models/tiny_qwen3vl_vision{,_expected}, made by tools/reference/make_tiny_qwen3vl_vision.py from three
// committed images of different aspect ratios.
//
// 1. The tower on the processor's own pixel_values: the merged embeddings and every DeepStack feature within 1e-4 by
//    max|a − b| / max|b| per image.
// 2. loom's whole path (decode the file, preprocess with the snapshot's preprocessor_config.json, encode): the grid
//    must equal image_grid_thw, the pixel values must be within one 8-bit level (2/255 after the 0.5/0.5
//    normalisation) of the processor's, and the features within 1e-3 — looser than (1) only to absorb a resize
//    rounding at that level; loom's preprocessing is separately tested bit for bit against the PIL backend.
//
// Skipped, naming the folder, when the fixture has not been generated.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "model/families/qwen3vl_vision.h"
#include "model_test_util.h"
#include "vision/image_decode.h"
#include "vision/preprocess_qwen3vl.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

constexpr double kTowerTolerance = 1e-4;
constexpr double kPipelineTolerance = 1e-3;
constexpr double kPixelTolerance = 2.0 / 255.0 + 1e-6;

std::filesystem::path snapshot_dir() {
  return testing::golden_dir() / "tiny_qwen3vl_vision";
}
std::filesystem::path expected_dir() {
  return testing::golden_dir() / "tiny_qwen3vl_vision_expected";
}

bool fixture_present() {
  return std::filesystem::exists(snapshot_dir() / "model.safetensors") &&
         std::filesystem::exists(expected_dir() / "cases.json");
}

#define SKIP_WITHOUT_FIXTURE()                                                                                     \
  if (!fixture_present())                                                                                          \
  GTEST_SKIP() << "fixture folders tests/golden/models/tiny_qwen3vl_vision{,_expected} are absent: generate them " \
                  "with tools/reference/make_tiny_qwen3vl_vision.py tests/golden/models"

struct Fixture {
  weights::Snapshot snapshot = weights::Snapshot::open(snapshot_dir());
  WeightLoader loader{snapshot};
  backend::cpu::CpuBackend backend;
  Qwen3VLVisionTower tower{snapshot, loader, backend};
  json cases = json::parse(std::ifstream(expected_dir() / "cases.json"));
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

double relative_error(const Tensor& actual, const std::vector<float>& expected) {
  EXPECT_EQ(actual.elements(), static_cast<int64_t>(expected.size()));
  if (actual.elements() != static_cast<int64_t>(expected.size())) return 1e9;
  return testing::row_relative_error(actual.data_as<float>(), expected.data(), actual.elements());
}

void expect_features(const Qwen3VLImageFeatures& features, const json& c, double tolerance) {
  const int64_t tokens = c["soft_tokens"].get<int64_t>();
  EXPECT_EQ(features.embeddings.shape(), (Shape{tokens, fixture().cases["out_hidden_size"].get<int64_t>()}));
  const double error =
      relative_error(features.embeddings, testing::read_f32_file(expected_dir() / c["embeddings"].get<std::string>()));
  EXPECT_LT(error, tolerance) << "embeddings";
  ASSERT_EQ(features.deepstack.size(), c["deepstack"].size());
  for (size_t j = 0; j < features.deepstack.size(); ++j) {
    EXPECT_LT(relative_error(features.deepstack[j],
                             testing::read_f32_file(expected_dir() / c["deepstack"][j].get<std::string>())),
              tolerance)
        << "deepstack " << j;
  }
}

TEST(Qwen3VLVisionGolden, TowerMatchesTransformersOnTheProcessorPixels) {
  SKIP_WITHOUT_FIXTURE();
  Fixture& f = fixture();
  ASSERT_EQ(f.cases["cases"].size(), 3u);
  for (const json& c : f.cases["cases"]) {
    SCOPED_TRACE(c["image"].get<std::string>());
    const auto grid = c["grid_thw"].get<std::vector<int64_t>>();
    const std::vector<float> pixels = testing::read_f32_file(expected_dir() / c["pixels"].get<std::string>());
    ImagePixels image;
    const int64_t rows = grid[0] * grid[1] * grid[2];
    image.pixel_values = Tensor::zeros(DType::kF32, {rows, static_cast<int64_t>(pixels.size()) / rows});
    std::copy(pixels.begin(), pixels.end(), image.pixel_values.data_as<float>());
    std::copy(grid.begin(), grid.end(), image.grid_thw);
    image.soft_tokens = c["soft_tokens"].get<int64_t>();
    expect_features(f.tower.encode(image), c, kTowerTolerance);
  }
}

TEST(Qwen3VLVisionGolden, LoomPreprocessingAndTowerMatchTransformers) {
  SKIP_WITHOUT_FIXTURE();
  Fixture& f = fixture();
  ASSERT_NE(f.snapshot.preprocessor_config(), nullptr);
  const vision::Qwen3VLImageConfig config = vision::qwen3vl_image_config(*f.snapshot.preprocessor_config());
  for (const json& c : f.cases["cases"]) {
    SCOPED_TRACE(c["image"].get<std::string>());
    std::ifstream in(std::filesystem::path(LOOM_SOURCE_DIR) / "tests/golden/images" / c["image"].get<std::string>(),
                     std::ios::binary);
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const vision::Qwen3VLPixels pixels = vision::preprocess_qwen3vl(vision::decode_image(bytes), config);
    const auto grid = c["grid_thw"].get<std::vector<int64_t>>();
    ASSERT_EQ(std::vector<int64_t>(pixels.grid_thw.begin(), pixels.grid_thw.end()), grid);
    const std::vector<float> reference = testing::read_f32_file(expected_dir() / c["pixels"].get<std::string>());
    ASSERT_EQ(pixels.pixel_values.elements(), static_cast<int64_t>(reference.size()));
    double pixel_error = 0;
    for (size_t i = 0; i < reference.size(); ++i) {
      pixel_error =
          std::max(pixel_error, std::abs(static_cast<double>(pixels.pixel_values.data_as<float>()[i]) - reference[i]));
    }
    EXPECT_LE(pixel_error, kPixelTolerance);

    ImagePixels image;
    image.pixel_values = pixels.pixel_values;
    std::copy(grid.begin(), grid.end(), image.grid_thw);
    image.soft_tokens = pixels.num_tokens;
    expect_features(f.tower.encode(image), c, kPipelineTolerance);
  }
}

}  // namespace
}  // namespace loom::model
