#include "vision/exif_orientation.h"

#include <cstring>
#include <optional>
#include <string_view>

namespace loom::vision {
namespace {

constexpr uint16_t kOrientationTag = 0x0112;
constexpr uint16_t kShortType = 3;

uint16_t read_u16(const uint8_t* p, bool little) {
  return little ? static_cast<uint16_t>(p[0] | (p[1] << 8)) : static_cast<uint16_t>((p[0] << 8) | p[1]);
}

uint32_t read_u32(const uint8_t* p, bool little) {
  return little ? (uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24))
                : ((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]});
}

bool starts_with(std::span<const uint8_t> bytes, std::string_view prefix) {
  return bytes.size() >= prefix.size() && std::memcmp(bytes.data(), prefix.data(), prefix.size()) == 0;
}

// The orientation entry of IFD0 in a TIFF-structured EXIF block.
int orientation_from_tiff(std::span<const uint8_t> tiff) {
  if (tiff.size() < 8) return 1;
  bool little;
  if (starts_with(tiff, "II")) {
    little = true;
  } else if (starts_with(tiff, "MM")) {
    little = false;
  } else {
    return 1;
  }
  if (read_u16(tiff.data() + 2, little) != 42) return 1;
  const uint64_t ifd = read_u32(tiff.data() + 4, little);
  if (ifd + 2 > tiff.size()) return 1;
  const uint16_t entries = read_u16(tiff.data() + ifd, little);
  for (uint64_t k = 0; k < entries; ++k) {
    const uint64_t entry = ifd + 2 + 12 * k;
    if (entry + 12 > tiff.size()) return 1;
    const uint8_t* p = tiff.data() + entry;
    if (read_u16(p, little) != kOrientationTag) continue;
    if (read_u16(p + 2, little) != kShortType || read_u32(p + 4, little) < 1) return 1;
    const uint16_t value = read_u16(p + 8, little);  // a SHORT sits in the first two bytes of the value field
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

std::optional<std::span<const uint8_t>> jpeg_exif(std::span<const uint8_t> bytes) {
  size_t at = 2;  // after SOI
  while (at + 4 <= bytes.size() && bytes[at] == 0xFF) {
    const uint8_t marker = bytes[at + 1];
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 || marker == 0xFF) {
      at += marker == 0xFF ? 1 : 2;  // markers without a length (and fill bytes)
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) break;  // image data starts: metadata comes before it
    const size_t length = (size_t{bytes[at + 2]} << 8) | bytes[at + 3];
    if (length < 2 || at + 2 + length > bytes.size()) break;
    const auto segment = bytes.subspan(at + 4, length - 2);
    if (marker == 0xE1 && starts_with(segment, std::string_view("Exif\0\0", 6))) return segment.subspan(6);
    at += 2 + length;
  }
  return std::nullopt;
}

std::optional<std::span<const uint8_t>> png_exif(std::span<const uint8_t> bytes) {
  size_t at = 8;  // after the signature
  while (at + 12 <= bytes.size()) {
    const size_t length = read_u32(bytes.data() + at, false);
    const auto type = bytes.subspan(at + 4, 4);
    if (length > bytes.size() - at - 12) break;
    if (starts_with(type, "eXIf")) return bytes.subspan(at + 8, length);
    if (starts_with(type, "IEND")) break;
    at += 12 + length;
  }
  return std::nullopt;
}

std::optional<std::span<const uint8_t>> webp_exif(std::span<const uint8_t> bytes) {
  size_t at = 12;  // after "RIFF" size "WEBP"
  while (at + 8 <= bytes.size()) {
    const size_t length = read_u32(bytes.data() + at + 4, true);
    if (length > bytes.size() - at - 8) break;
    if (starts_with(bytes.subspan(at, 4), "EXIF")) {
      auto data = bytes.subspan(at + 8, length);
      // Some writers keep the JPEG-style "Exif\0\0" prefix inside the chunk.
      if (starts_with(data, std::string_view("Exif\0\0", 6))) data = data.subspan(6);
      return data;
    }
    at += 8 + length + (length & 1);
  }
  return std::nullopt;
}

}  // namespace

int read_exif_orientation(std::span<const uint8_t> bytes, ImageFormat format) {
  std::optional<std::span<const uint8_t>> exif;
  switch (format) {
    case ImageFormat::kJpeg:
      exif = jpeg_exif(bytes);
      break;
    case ImageFormat::kPng:
      exif = png_exif(bytes);
      break;
    case ImageFormat::kWebp:
      exif = webp_exif(bytes);
      break;
    case ImageFormat::kGif:
    case ImageFormat::kBmp:
      break;
  }
  return exif ? orientation_from_tiff(*exif) : 1;
}

Image apply_exif_orientation(const Image& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int w = image.width;
  const int h = image.height;
  const bool swaps = orientation >= 5;
  Image out(swaps ? h : w, swaps ? w : h);
  for (int y = 0; y < h; ++y) {
    const uint8_t* source = image.row(y);
    for (int x = 0; x < w; ++x) {
      // Where input pixel (x, y) lands, as PIL's transpose methods place it.
      int ox = x;
      int oy = y;
      switch (orientation) {
        case 2:  // FLIP_LEFT_RIGHT
          ox = w - 1 - x;
          break;
        case 3:  // ROTATE_180
          ox = w - 1 - x;
          oy = h - 1 - y;
          break;
        case 4:  // FLIP_TOP_BOTTOM
          oy = h - 1 - y;
          break;
        case 5:  // TRANSPOSE
          ox = y;
          oy = x;
          break;
        case 6:  // ROTATE_270 (90° clockwise)
          ox = h - 1 - y;
          oy = x;
          break;
        case 7:  // TRANSVERSE
          ox = h - 1 - y;
          oy = w - 1 - x;
          break;
        case 8:  // ROTATE_90 (90° counter-clockwise)
          ox = y;
          oy = w - 1 - x;
          break;
      }
      std::memcpy(out.row(oy) + static_cast<size_t>(ox) * 3, source + static_cast<size_t>(x) * 3, 3);
    }
  }
  return out;
}

}  // namespace loom::vision
