#pragma once
// A decoded picture: 8-bit RGB, row-major, three bytes per pixel, no padding between rows. Every decoder and
// preprocessor in the vision room speaks this one layout (what PIL calls mode "RGB").

#include <cstddef>
#include <cstdint>
#include <vector>

namespace loom::vision {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3 bytes

  Image() = default;
  Image(int w, int h) : width(w), height(h), pixels(static_cast<size_t>(w) * static_cast<size_t>(h) * 3) {}

  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * static_cast<size_t>(width) * 3; }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * static_cast<size_t>(width) * 3; }
};

}  // namespace loom::vision
