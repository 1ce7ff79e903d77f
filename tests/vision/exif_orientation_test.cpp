// EXIF orientation: the tag is read from JPEG, PNG and WebP containers, broken blocks are ignored, and the pixel
// moves match PIL's transpose methods (the full decode is compared with PIL's exif_transpose on every test image in
// image_decode_test.cpp).

#include "vision/exif_orientation.h"

#include <gtest/gtest.h>

#include <string>

#include "reference.h"

namespace loom::vision {
namespace {

using testing::read_bytes;
using testing::source_dir;

std::vector<uint8_t> golden_image(const std::string& name) {
  return read_bytes(source_dir() / "tests/golden/images" / name);
}

TEST(ExifOrientation, ReadsTheTagFromEveryContainer) {
  for (int orientation = 1; orientation <= 8; ++orientation) {
    const auto name = "exif_orientation_" + std::to_string(orientation) + "_23x11.png";
    EXPECT_EQ(read_exif_orientation(golden_image(name), ImageFormat::kPng), orientation) << name;
  }
  EXPECT_EQ(read_exif_orientation(golden_image("exif_orientation_6_121x89.jpg"), ImageFormat::kJpeg), 6);
  EXPECT_EQ(read_exif_orientation(golden_image("exif_orientation_8_23x11_lossless.webp"), ImageFormat::kWebp), 8);
  EXPECT_EQ(read_exif_orientation(golden_image("photo_121x89_q90.jpg"), ImageFormat::kJpeg), 1);
  EXPECT_EQ(read_exif_orientation(golden_image("rgb_17x400.png"), ImageFormat::kPng), 1);
}

TEST(ExifOrientation, IgnoresBrokenBlocks) {
  auto bytes = golden_image("exif_orientation_6_121x89.jpg");
  // Every truncation of the file keeps the reader inside the buffer and gives either the tag or "none".
  for (size_t size = 0; size < 200 && size < bytes.size(); ++size) {
    const int orientation = read_exif_orientation(std::span(bytes).first(size), ImageFormat::kJpeg);
    EXPECT_TRUE(orientation == 1 || orientation == 6) << size;
  }
  const std::vector<uint8_t> junk(64, 0xFF);
  EXPECT_EQ(read_exif_orientation(junk, ImageFormat::kJpeg), 1);
  EXPECT_EQ(read_exif_orientation(junk, ImageFormat::kPng), 1);
  EXPECT_EQ(read_exif_orientation(junk, ImageFormat::kWebp), 1);
}

TEST(ExifOrientation, MovesPixelsAsPilTransposes) {
  // A 3×2 image with distinct pixels a b c / d e f (one channel shown; all three carry the same value).
  Image image(3, 2);
  for (int k = 0; k < 6; ++k) image.pixels[3 * k] = image.pixels[3 * k + 1] = image.pixels[3 * k + 2] = 'a' + k;
  const auto layout = [](const Image& im) {
    std::string out;
    for (int y = 0; y < im.height; ++y) {
      for (int x = 0; x < im.width; ++x) out += static_cast<char>(im.row(y)[3 * x]);
      out += '/';
    }
    return out;
  };
  EXPECT_EQ(layout(apply_exif_orientation(image, 1)), "abc/def/");
  EXPECT_EQ(layout(apply_exif_orientation(image, 2)), "cba/fed/");
  EXPECT_EQ(layout(apply_exif_orientation(image, 3)), "fed/cba/");
  EXPECT_EQ(layout(apply_exif_orientation(image, 4)), "def/abc/");
  EXPECT_EQ(layout(apply_exif_orientation(image, 5)), "ad/be/cf/");
  EXPECT_EQ(layout(apply_exif_orientation(image, 6)), "da/eb/fc/");
  EXPECT_EQ(layout(apply_exif_orientation(image, 7)), "fc/eb/da/");
  EXPECT_EQ(layout(apply_exif_orientation(image, 8)), "cf/be/ad/");
}

}  // namespace
}  // namespace loom::vision
