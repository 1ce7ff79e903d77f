// libFuzzer target: arbitrary bytes through the image decoder with small limits. Any loom::Error is an accepted
// outcome; crashes, sanitizer reports and other exceptions are failures. A successful decode must be consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/error.h"
#include "vision/image_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  loom::vision::DecodeLimits limits;
  limits.max_bytes = 1 << 20;
  limits.max_pixels = 1 << 20;
  try {
    const loom::vision::Image image = loom::vision::decode_image(std::span<const uint8_t>(data, size), limits);
    if (image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3 ||
        static_cast<uint64_t>(image.width) * static_cast<uint64_t>(image.height) > limits.max_pixels) {
      std::abort();
    }
  } catch (const loom::Error&) {
  }
  return 0;
}
