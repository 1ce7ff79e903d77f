#include "vision/resize.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "reference.h"

namespace loom::vision {
namespace {

struct Case {
  int in_w, in_h, out_w, out_h;
};

// Up, down, mixed, extreme aspect ratios, 1-pixel sides, non-integer ratios.
const Case kCases[] = {
    {1, 1, 1, 7},           {1, 1, 5, 3},           {17, 400, 17, 400},    {17, 400, 896, 896}, {17, 400, 3, 31},
    {1000, 37, 896, 896},   {1000, 37, 97, 5},      {1000, 37, 1000, 1},   {1000, 37, 1, 37},   {64, 48, 768, 576},
    {333, 211, 224, 224},   {333, 211, 1001, 3},    {2, 2, 3, 3},          {7, 5, 6, 4},        {400, 300, 48, 912},
    {2000, 1500, 896, 896}, {2000, 1500, 768, 576}, {120, 90, 2000, 1500},
};

TEST(Resize, BitExactAgainstPillow) {
  testing::TempDir tmp;
  std::ofstream manifest(tmp / "manifest");
  std::vector<Image> inputs;
  int index = 0;
  for (const Case& c : kCases) {
    inputs.push_back(testing::test_picture(c.in_w, c.in_h, static_cast<uint32_t>(index)));
    const auto in_path = tmp / ("in" + std::to_string(index));
    testing::write_bytes(in_path, inputs.back().pixels.data(), inputs.back().pixels.size());
    for (int filter : {2, 3}) {
      manifest << in_path.string() << " " << c.in_w << " " << c.in_h << " " << filter << " " << c.out_w << " "
               << c.out_h << " " << (tmp / ("out" + std::to_string(index) + "_" + std::to_string(filter))).string()
               << "\n";
    }
    ++index;
  }
  manifest.close();
  testing::run_reference("resize", tmp / "manifest");
  index = 0;
  for (const Case& c : kCases) {
    for (int filter : {2, 3}) {
      SCOPED_TRACE(::testing::Message() << c.in_w << "x" << c.in_h << " -> " << c.out_w << "x" << c.out_h << " filter "
                                        << filter);
      const Image out = resize(inputs[index], c.out_w, c.out_h, resample_filter_from_pil(filter));
      ASSERT_EQ(out.width, c.out_w);
      ASSERT_EQ(out.height, c.out_h);
      const auto expected = testing::read_bytes(tmp / ("out" + std::to_string(index) + "_" + std::to_string(filter)));
      ASSERT_EQ(out.pixels.size(), expected.size());
      size_t mismatches = 0;
      for (size_t i = 0; i < expected.size(); ++i) mismatches += out.pixels[i] != expected[i];
      EXPECT_EQ(mismatches, 0u);
    }
    ++index;
  }
}

TEST(Resize, ConstantImageStaysConstant) {
  Image flat(37, 11);
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t{201});
  for (auto filter : {ResampleFilter::kBilinear, ResampleFilter::kBicubic}) {
    const Image out = resize(flat, 300, 5, filter);
    for (uint8_t v : out.pixels) ASSERT_EQ(v, 201);
  }
}

TEST(Resize, RefusesBadSizesAndFilters) {
  const Image image = testing::test_picture(4, 4, 1);
  EXPECT_THROW(resize(image, 0, 4, ResampleFilter::kBicubic), Error);
  EXPECT_THROW(resize(Image{}, 4, 4, ResampleFilter::kBicubic), Error);
  EXPECT_THROW(resample_filter_from_pil(1), Error);
  EXPECT_EQ(resample_filter_from_pil(3), ResampleFilter::kBicubic);
}

}  // namespace
}  // namespace loom::vision
