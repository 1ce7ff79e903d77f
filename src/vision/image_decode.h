#pragma once
// Image bytes → RGB pixels. The container type comes from the magic bytes (never from a claimed MIME type); the
// header is read and checked against the limits before any pixel is decoded. Colour conversion follows what
// `PIL.Image.open(f).convert("RGB")` produces, because that is what the reference pipeline feeds the processors:
// alpha is dropped (not composited), palettes are expanded, grey is replicated, 16-bit channels keep their high byte
// except 16-bit greyscale PNG, which PIL opens as 32-bit integers and clips to 0..255. An EXIF orientation tag is
// applied afterwards, as transformers' load_image does (exif_orientation.h).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "vision/image.h"

namespace loom::vision {

enum class ImageFormat { kPng, kJpeg, kGif, kBmp, kWebp };

std::string_view image_format_name(ImageFormat format);

struct DecodeLimits {
  size_t max_bytes = size_t{20} << 20;  // encoded size
  uint64_t max_pixels = 50'000'000;     // width * height from the header
};

struct ImageInfo {
  ImageFormat format = ImageFormat::kPng;
  int width = 0;
  int height = 0;
};

// The format whose signature starts `bytes`, or nullopt.
std::optional<ImageFormat> detect_image_format(std::span<const uint8_t> bytes);

// Reads only the header: format and dimensions, with the limits enforced. Throws Error(kInvalidRequest) for an
// unknown type, an unreadable header, a zero-size image or a limit exceeded.
ImageInfo probe_image(std::span<const uint8_t> bytes, const DecodeLimits& limits = {});

// probe_image, then the full decode. Throws Error(kInvalidRequest) for truncated or corrupt data and
// Error(kUnsupported) for well-formed images loom does not read (animated WebP).
Image decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits = {});

}  // namespace loom::vision
