// The three families' preprocessors against tests/vision/pil_reference.py, which performs transformers' PIL-backend
// steps with PIL and numpy. Float outputs must be bit-identical.

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "reference.h"
#include "vision/preprocess_gemma3.h"
#include "vision/preprocess_gemma4.h"
#include "vision/preprocess_qwen3vl.h"

namespace loom::vision {
namespace {

struct Size {
  int width, height;
};

std::filesystem::path write_input(const testing::TempDir& tmp, const Image& image, int index) {
  const auto path = tmp / ("in" + std::to_string(index));
  testing::write_bytes(path, image.pixels.data(), image.pixels.size());
  return path;
}

// Number of floats that differ bit-for-bit.
size_t float_mismatches(const float* actual, const uint8_t* expected, size_t count) {
  size_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    float e;
    std::memcpy(&e, expected + i * 4, 4);
    bad += std::memcmp(&e, &actual[i], 4) != 0;
  }
  return bad;
}

TEST(PreprocessGemma3, MatchesPilReference) {
  struct Case {
    Size size;
    int out;
    bool pan_and_scan;
  };
  const Case cases[] = {{{17, 400}, 896, false}, {{1000, 37}, 224, true},  {{900, 300}, 224, true},
                        {{300, 700}, 224, true}, {{1000, 600}, 128, true}, {{1, 1}, 64, false},
                        {{640, 480}, 224, true}};
  testing::TempDir tmp;
  std::ofstream manifest(tmp / "manifest");
  std::vector<Image> inputs;
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    inputs.push_back(testing::test_picture(c.size.width, c.size.height, static_cast<uint32_t>(100 + i)));
    manifest << write_input(tmp, inputs.back(), static_cast<int>(i)).string() << " " << c.size.width << " "
             << c.size.height << " " << c.out << " " << (c.pan_and_scan ? 1 : 0) << " "
             << (tmp / ("out" + std::to_string(i))).string() << "\n";
  }
  manifest.close();
  testing::run_reference("gemma3", tmp / "manifest");
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(::testing::Message() << c.size.width << "x" << c.size.height << " pan_and_scan " << c.pan_and_scan);
    Gemma3ImageConfig config = gemma3_image_config(
        nlohmann::json{{"size", {{"height", c.out}, {"width", c.out}}}, {"do_pan_and_scan", c.pan_and_scan}});
    const Gemma3Pixels pixels = preprocess_gemma3(inputs[i], config);
    const auto expected = testing::read_bytes(tmp / ("out" + std::to_string(i)));
    uint32_t count = 0;
    std::memcpy(&count, expected.data(), 4);
    ASSERT_EQ(pixels.num_crops + 1, static_cast<int>(count));
    ASSERT_EQ(pixels.pixel_values.shape(), (Shape{count, 3, c.out, c.out}));
    ASSERT_EQ(expected.size(), 4 + pixels.pixel_values.bytes());
    EXPECT_EQ(float_mismatches(pixels.pixel_values.data_as<float>(), expected.data() + 4,
                               static_cast<size_t>(pixels.pixel_values.elements())),
              0u);
  }
}

TEST(PreprocessGemma3, PanAndScanCropsFollowTheRules) {
  Gemma3ImageConfig config;
  EXPECT_TRUE(gemma3_pan_and_scan_crops(1000, 900, config).empty());  // ratio below 1.2
  const auto wide = gemma3_pan_and_scan_crops(900, 300, config);      // ratio 3 → 3 crops of 300
  ASSERT_EQ(wide.size(), 3u);
  EXPECT_EQ(wide[2].x, 600);
  EXPECT_EQ(wide[2].width, 300);
  const auto uneven = gemma3_pan_and_scan_crops(1000, 300, config);  // ceil(1000/3) = 334, last crop narrower
  ASSERT_EQ(uneven.size(), 3u);
  EXPECT_EQ(uneven[0].width, 334);
  EXPECT_EQ(uneven[2].width, 1000 - 668);
  EXPECT_TRUE(gemma3_pan_and_scan_crops(1000, 37, config).empty());    // crops would be under 256
  EXPECT_EQ(gemma3_pan_and_scan_crops(300, 2000, config).size(), 4u);  // capped at max_num_crops
}

TEST(PreprocessGemma4, MatchesPilReference) {
  struct Case {
    Size size;
    int tokens;
  };
  const Case cases[] = {{{1024, 1024}, 280}, {{17, 400}, 280}, {{1000, 37}, 280},  {{2000, 2}, 280},
                        {{1, 1}, 70},        {{640, 480}, 70}, {{300, 1000}, 560}, {{48, 48}, 140}};
  testing::TempDir tmp;
  std::ofstream manifest(tmp / "manifest");
  std::vector<Image> inputs;
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    inputs.push_back(testing::test_picture(c.size.width, c.size.height, static_cast<uint32_t>(200 + i)));
    manifest << write_input(tmp, inputs.back(), static_cast<int>(i)).string() << " " << c.size.width << " "
             << c.size.height << " " << c.tokens << " " << (tmp / ("out" + std::to_string(i))).string() << "\n";
  }
  manifest.close();
  testing::run_reference("gemma4", tmp / "manifest");
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(::testing::Message() << c.size.width << "x" << c.size.height << " tokens " << c.tokens);
    Gemma4ImageConfig config = gemma4_image_config(nlohmann::json{{"max_soft_tokens", c.tokens}});
    const Gemma4Pixels pixels = preprocess_gemma4(inputs[i], config);
    const auto expected = testing::read_bytes(tmp / ("out" + std::to_string(i)));
    const int max_patches = c.tokens * 9;
    ASSERT_EQ(pixels.pixel_values.shape(), (Shape{max_patches, 768}));
    ASSERT_EQ(expected.size(), 4 + pixels.pixel_values.bytes() + pixels.position_ids.bytes());
    uint32_t tokens = 0;
    std::memcpy(&tokens, expected.data(), 4);
    EXPECT_EQ(pixels.num_soft_tokens, static_cast<int>(tokens));
    EXPECT_EQ(float_mismatches(pixels.pixel_values.data_as<float>(), expected.data() + 4,
                               static_cast<size_t>(pixels.pixel_values.elements())),
              0u);
    EXPECT_EQ(std::memcmp(pixels.position_ids.data(), expected.data() + 4 + pixels.pixel_values.bytes(),
                          pixels.position_ids.bytes()),
              0);
  }
}

TEST(PreprocessGemma4, SizesAndTokenCounts) {
  // models.md §2.4: 1024² → 768² → 256 soft tokens.
  EXPECT_EQ(gemma4_target_size(1024, 1024, 16, 280 * 9, 3), (std::pair{768, 768}));
  const Gemma4Pixels pixels = preprocess_gemma4(testing::test_picture(1024, 1024, 1), Gemma4ImageConfig{});
  EXPECT_EQ(pixels.num_soft_tokens, 256);
  EXPECT_EQ(pixels.position_ids.data_as<int64_t>()[2 * 2304], -1);  // 48 x 48 = 2304 real patches of 2520
  EXPECT_EQ(pixels.position_ids.data_as<int64_t>()[2 * 2303], 47);  // last real patch: x = 47
  EXPECT_THROW(check_gemma4_soft_tokens(100), Error);
  EXPECT_THROW(gemma4_image_config(nlohmann::json{{"max_soft_tokens", 300}}), Error);
}

TEST(PreprocessQwen3VL, MatchesPilReference) {
  struct Case {
    Size size;
    int64_t min_pixels, max_pixels;
  };
  const Case cases[] = {{{17, 400}, 65536, 16777216},    {{1000, 37}, 65536, 16777216}, {{640, 480}, 65536, 200000},
                        {{2000, 1500}, 65536, 16777216}, {{1, 1}, 65536, 16777216},     {{333, 211}, 4096, 100000}};
  testing::TempDir tmp;
  std::ofstream manifest(tmp / "manifest");
  std::vector<Image> inputs;
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    inputs.push_back(testing::test_picture(c.size.width, c.size.height, static_cast<uint32_t>(300 + i)));
    manifest << write_input(tmp, inputs.back(), static_cast<int>(i)).string() << " " << c.size.width << " "
             << c.size.height << " " << c.min_pixels << " " << c.max_pixels << " "
             << (tmp / ("out" + std::to_string(i))).string() << "\n";
  }
  manifest.close();
  testing::run_reference("qwen3vl", tmp / "manifest");
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(::testing::Message() << c.size.width << "x" << c.size.height);
    const Qwen3VLImageConfig config = qwen3vl_image_config(nlohmann::json{
        {"size", {{"shortest_edge", c.min_pixels}, {"longest_edge", c.max_pixels}}}, {"patch_size", 16}});
    const Qwen3VLPixels pixels = preprocess_qwen3vl(inputs[i], config);
    const auto expected = testing::read_bytes(tmp / ("out" + std::to_string(i)));
    uint32_t grid[3];
    std::memcpy(grid, expected.data(), 12);
    EXPECT_EQ(pixels.grid_thw, (std::array<int64_t, 3>{grid[0], grid[1], grid[2]}));
    EXPECT_EQ(pixels.num_tokens, static_cast<int>(grid[1] * grid[2] / 4));
    ASSERT_EQ(pixels.pixel_values.shape(), (Shape{int64_t{grid[1]} * grid[2], 1536}));
    ASSERT_EQ(expected.size(), 12 + pixels.pixel_values.bytes());
    EXPECT_EQ(float_mismatches(pixels.pixel_values.data_as<float>(), expected.data() + 12,
                               static_cast<size_t>(pixels.pixel_values.elements())),
              0u);
  }
}

TEST(PreprocessQwen3VL, SmartResizeRules) {
  EXPECT_EQ(qwen_smart_resize(480, 640, 32, 65536, 16777216), (std::pair{480, 640}));
  EXPECT_EQ(qwen_smart_resize(16, 16, 32, 65536, 16777216), (std::pair{256, 256}));
  EXPECT_EQ(qwen_smart_resize(48, 80, 32, 1, 16777216), (std::pair{64, 64}));  // 1.5 → 2 and 2.5 → 2 (half-even)
  EXPECT_THROW(qwen_smart_resize(1, 300, 32, 65536, 16777216), Error);         // aspect ratio above 200
  const Qwen3VLImageConfig config =
      qwen3vl_image_config(nlohmann::json{{"size", {{"shortest_edge", 1}, {"longest_edge", 2}}},
                                          {"min_pixels", 4096},
                                          {"max_pixels", 8192},
                                          {"image_mean", {0.1, 0.2, 0.3}}});
  EXPECT_EQ(config.min_pixels, 4096);
  EXPECT_EQ(config.max_pixels, 8192);
  EXPECT_FLOAT_EQ(config.scaling.mean[2], 0.3f);
}

}  // namespace
}  // namespace loom::vision
