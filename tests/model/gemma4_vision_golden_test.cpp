// The Gemma 4 vision tower against Hugging Face transformers (float32, on the bf16-rounded weights of the tiny
// snapshot): tests/golden/models/tiny_gemma4_vision{,_expected}, made by tools/reference/make_tiny_gemma4_vision.py
// on a machine with torch. Skipped while that folder is absent.
//
// Per committed test picture (three aspect ratios, max_soft_tokens 70):
// - the processor's pixel_values / image_position_ids through Gemma4VisionTower::encode must give
//   get_image_features' pooler_output within 1e-4 (max|a − b| / max|b|), and encode_soft_tokens the tower's
//   last_hidden_state;
// - loom's preprocessing of the same file gives the processor's position ids exactly, the PIL backend's pixel values
//   exactly, the default (torchvision) backend's within 2/255 (docs/MODELS.md), and through the tower the PIL-backend
//   features within 1e-4 and the default-backend features within kDefaultBackendTolerance.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "model/families/gemma4_vision.h"
#include "model_test_util.h"
#include "vision/image_decode.h"
#include "vision/preprocess_gemma4.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;

constexpr double kTolerance = 1e-4;
// Pixel values of the torchvision backend differ from PIL's by up to 2/255; through the tiny tower that moved the
// features by at most 2.8e-3 on the fixture's three pictures (measured; the PIL-backend features match to ~2e-6).
constexpr double kDefaultBackendTolerance = 1e-2;
constexpr float kDefaultBackendPixelTolerance = 2.0f / 255.0f + 1e-6f;

std::filesystem::path snapshot_dir() {
  return testing::golden_dir() / "tiny_gemma4_vision";
}
std::filesystem::path expected_dir() {
  return testing::golden_dir() / "tiny_gemma4_vision_expected";
}

std::vector<int64_t> read_i64_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<int64_t> values(bytes.size() / sizeof(int64_t));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(int64_t));
  return values;
}

double relative_error(const Tensor& actual, const std::vector<float>& expected) {
  EXPECT_EQ(actual.elements(), static_cast<int64_t>(expected.size()));
  if (actual.elements() != static_cast<int64_t>(expected.size())) return 1e9;
  return testing::row_relative_error(actual.data_as<float>(), expected.data(), actual.elements());
}

std::vector<float> expected_f32(const json& c, const char* key) {
  return testing::read_f32_file(expected_dir() / c[key].get<std::string>());
}

class Gemma4VisionGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(snapshot_dir() / "config.json") ||
        !std::filesystem::exists(expected_dir() / "cases.json")) {
      GTEST_SKIP() << "fixture tests/golden/models/tiny_gemma4_vision (and _expected) is absent; make it with "
                      "python3 tools/reference/make_tiny_gemma4_vision.py tests/golden/models";
    }
    snapshot_.emplace(weights::Snapshot::open(snapshot_dir()));
    tower_.emplace(*snapshot_, WeightLoader(*snapshot_), backend_);
    cases_ = json::parse(std::ifstream(expected_dir() / "cases.json"));
  }

  std::optional<weights::Snapshot> snapshot_;
  backend::cpu::CpuBackend backend_;
  std::optional<Gemma4VisionTower> tower_;
  json cases_;
};

TEST_F(Gemma4VisionGolden, ProcessorPixelsThroughTheTower) {
  ASSERT_FALSE(cases_["cases"].empty());
  for (const json& c : cases_["cases"]) {
    const std::string name = c["image"].get<std::string>();
    const int64_t patches = c["patches"], row = c["patch_elements"], tokens = c["soft_tokens"];
    ImagePixels image;
    image.pixel_values = Tensor::zeros(DType::kF32, {patches, row});
    image.position_ids = Tensor::zeros(DType::kI64, {patches, 2});
    const std::vector<float> pixels = expected_f32(c, "pixels");
    const std::vector<int64_t> positions = read_i64_file(expected_dir() / c["positions"].get<std::string>());
    ASSERT_EQ(static_cast<int64_t>(pixels.size()), patches * row) << name;
    ASSERT_EQ(static_cast<int64_t>(positions.size()), patches * 2) << name;
    std::copy(pixels.begin(), pixels.end(), image.pixel_values.data_as<float>());
    std::copy(positions.begin(), positions.end(), image.position_ids.data_as<int64_t>());
    image.soft_tokens = tokens;

    const Tensor soft = tower_->encode_soft_tokens(image);
    EXPECT_EQ(soft.shape(), (Shape{tokens, cases_["vision_hidden_size"].get<int64_t>()})) << name;
    EXPECT_LE(relative_error(soft, expected_f32(c, "soft")), kTolerance) << name;
    const Tensor features = tower_->encode(image);
    EXPECT_EQ(features.shape(), (Shape{tokens, cases_["text_hidden_size"].get<int64_t>()})) << name;
    EXPECT_LE(relative_error(features, expected_f32(c, "features")), kTolerance) << name;
  }
}

TEST_F(Gemma4VisionGolden, OurPreprocessingThroughTheTower) {
  const json preprocessor = json::parse(std::ifstream(snapshot_dir() / "preprocessor_config.json"));
  for (const json& c : cases_["cases"]) {
    const std::string name = c["image"].get<std::string>();
    std::ifstream in(testing::golden_dir() / "../images" / name, std::ios::binary);
    ASSERT_TRUE(in.good()) << name;
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    vision::Gemma4ImageConfig config = vision::gemma4_image_config(preprocessor);
    config.max_soft_tokens = c["max_soft_tokens"].get<int>();
    const vision::Gemma4Pixels ours = vision::preprocess_gemma4(vision::decode_image(bytes), config);
    ASSERT_EQ(ours.num_soft_tokens, c["soft_tokens"].get<int>()) << name;
    ASSERT_EQ(ours.pixel_values.shape(), (Shape{c["patches"].get<int64_t>(), c["patch_elements"].get<int64_t>()}));

    const std::vector<int64_t> positions = read_i64_file(expected_dir() / c["positions"].get<std::string>());
    ASSERT_EQ(std::vector<int64_t>(ours.position_ids.span<int64_t>().begin(), ours.position_ids.span<int64_t>().end()),
              positions)
        << name;
    const std::vector<float> default_pixels = expected_f32(c, "pixels");
    float max_difference = 0;
    for (size_t i = 0; i < default_pixels.size(); ++i) {
      max_difference = std::max(max_difference, std::abs(ours.pixel_values.data_as<float>()[i] - default_pixels[i]));
    }
    EXPECT_LE(max_difference, kDefaultBackendPixelTolerance) << name;

    ImagePixels image{.pixel_values = ours.pixel_values, .position_ids = ours.position_ids};
    image.soft_tokens = ours.num_soft_tokens;
    const Tensor features = tower_->encode(image);
    EXPECT_LE(relative_error(features, expected_f32(c, "features")), kDefaultBackendTolerance) << name;
    if (!c["pil_pixels"].is_null()) {
      const std::vector<float> pil_pixels = expected_f32(c, "pil_pixels");
      ASSERT_EQ(static_cast<int64_t>(pil_pixels.size()), ours.pixel_values.elements());
      EXPECT_TRUE(std::equal(pil_pixels.begin(), pil_pixels.end(), ours.pixel_values.data_as<float>())) << name;
      EXPECT_LE(relative_error(features, expected_f32(c, "pil_features")), kTolerance) << name;
    }
  }
}

}  // namespace
}  // namespace loom::model
