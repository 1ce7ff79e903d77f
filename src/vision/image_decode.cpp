#include "vision/image_decode.h"

#include <stb/stb_image.h>
#include <webp/decode.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "vision/exif_orientation.h"

namespace loom::vision {
namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
uint16_t le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

[[noreturn]] void truncated(ImageFormat format) {
  fail(ErrorKind::kInvalidRequest, "{} image data is truncated", image_format_name(format));
}

// A JPEG is complete when its marker chain reaches EOI. stb_image pads a short stream with zeros and "succeeds";
// PIL (libjpeg) refuses it, so the structure is walked here first: segments by their lengths, entropy-coded data up
// to the next marker that is neither a stuffed 0xFF00 nor a restart marker.
void check_jpeg_complete(std::span<const uint8_t> b) {
  const size_t n = b.size();
  size_t i = 2;  // after SOI
  for (;;) {
    if (i >= n) truncated(ImageFormat::kJpeg);
    if (b[i] != 0xFF) fail(ErrorKind::kInvalidRequest, "JPEG image is corrupt: expected a marker at byte {}", i);
    while (i < n && b[i] == 0xFF) ++i;  // fill bytes
    if (i >= n) truncated(ImageFormat::kJpeg);
    const uint8_t marker = b[i++];
    if (marker == 0xD9) return;                                          // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // standalone markers
    if (i + 2 > n) truncated(ImageFormat::kJpeg);
    const size_t length = (size_t{b[i]} << 8) | b[i + 1];
    if (length < 2) fail(ErrorKind::kInvalidRequest, "JPEG image is corrupt: segment length {} at byte {}", length, i);
    if (length > n - i) truncated(ImageFormat::kJpeg);
    i += length;
    if (marker != 0xDA) continue;  // only SOS is followed by entropy-coded data
    for (;;) {
      const void* ff = i < n ? std::memchr(b.data() + i, 0xFF, n - i) : nullptr;
      if (ff == nullptr) truncated(ImageFormat::kJpeg);
      i = static_cast<size_t>(static_cast<const uint8_t*>(ff) - b.data());
      if (i + 1 >= n) truncated(ImageFormat::kJpeg);
      const uint8_t next = b[i + 1];
      if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
        i += 2;
      } else if (next == 0xFF) {
        i += 1;
      } else {
        break;  // a real marker starts at i
      }
    }
  }
}

// stb_image reads past the end of a short BMP as zeros; PIL refuses it. Uncompressed layouts have a known size.
void check_bmp_complete(std::span<const uint8_t> b) {
  if (b.size() < 30) truncated(ImageFormat::kBmp);
  const uint64_t offset = le32(b.data() + 10);
  const uint32_t header_size = le32(b.data() + 14);
  uint64_t width = 0, height = 0, bpp = 0, compression = 0;
  if (header_size == 12) {
    width = le16(b.data() + 18);
    height = le16(b.data() + 20);
    bpp = le16(b.data() + 24);
  } else {
    if (b.size() < 34) truncated(ImageFormat::kBmp);
    const auto w = static_cast<int32_t>(le32(b.data() + 18));
    const auto h = static_cast<int32_t>(le32(b.data() + 22));
    width = static_cast<uint64_t>(w < 0 ? -static_cast<int64_t>(w) : w);
    height = static_cast<uint64_t>(h < 0 ? -static_cast<int64_t>(h) : h);
    bpp = le16(b.data() + 28);
    compression = le32(b.data() + 30);
  }
  if (compression != 0 && compression != 3 && compression != 6) return;  // RLE: stb decides
  const uint64_t row_bytes = (width * bpp + 31) / 32 * 4;
  if (offset + row_bytes * height > b.size()) truncated(ImageFormat::kBmp);
}

// What PIL needs from a GIF beyond stb_image's RGBA first frame: the first frame's colour table and transparent
// index. PIL keeps the frame in mode "P" and convert("RGB") shows the transparent index as its palette colour;
// stb_image leaves those pixels at alpha 0. The walk also checks that the first frame's data is complete
// (stb_image decodes a short stream without complaint, PIL refuses it).
struct GifFirstFrame {
  std::vector<uint8_t> palette;  // RGB triples
  int transparent = -1;          // index, or -1
};

GifFirstFrame parse_gif(std::span<const uint8_t> b) {
  const size_t n = b.size();
  if (n < 13) truncated(ImageFormat::kGif);
  GifFirstFrame frame;
  size_t i = 13;
  auto read_table = [&](uint8_t packed) {
    const size_t size = size_t{3} << ((packed & 7) + 1);
    if (size > n - i) truncated(ImageFormat::kGif);
    frame.palette.assign(b.begin() + static_cast<long>(i), b.begin() + static_cast<long>(i + size));
    i += size;
  };
  auto skip_sub_blocks = [&] {
    for (;;) {
      if (i >= n) truncated(ImageFormat::kGif);
      const size_t length = b[i++];
      if (length == 0) return;
      if (length > n - i) truncated(ImageFormat::kGif);
      i += length;
    }
  };
  if (b[10] & 0x80) read_table(b[10]);
  for (;;) {
    if (i >= n) truncated(ImageFormat::kGif);
    const uint8_t block = b[i++];
    if (block == 0x21) {  // extension
      if (i >= n) truncated(ImageFormat::kGif);
      const uint8_t label = b[i++];
      if (label == 0xF9 && i + 5 <= n && b[i] == 4) {
        if (b[i + 1] & 1) frame.transparent = b[i + 4];
      }
      skip_sub_blocks();
    } else if (block == 0x2C) {  // image descriptor
      if (i + 9 > n) truncated(ImageFormat::kGif);
      const uint8_t packed = b[i + 8];
      i += 9;
      if (packed & 0x80) read_table(packed);
      if (i >= n) truncated(ImageFormat::kGif);
      ++i;  // LZW minimum code size
      skip_sub_blocks();
      return frame;
    } else {
      fail(ErrorKind::kInvalidRequest, "GIF image is corrupt: unexpected block 0x{:02x} before the first frame", block);
    }
  }
}

struct PngHeader {
  int width = 0;
  int height = 0;
  int bit_depth = 0;
  int color_type = 0;
};

PngHeader png_header(std::span<const uint8_t> b) {
  if (b.size() < 33) truncated(ImageFormat::kPng);
  if (std::memcmp(b.data() + 12, "IHDR", 4) != 0) {
    fail(ErrorKind::kInvalidRequest, "PNG image is corrupt: the first chunk is not IHDR");
  }
  // Dimensions are read here rather than by stb_image, whose header check refuses huge sizes with a vague message.
  const auto dimension = [&](size_t at) {
    const uint32_t v = (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
    return static_cast<int>(std::min<uint32_t>(v, INT_MAX));
  };
  return {dimension(16), dimension(20), b[24], b[25]};
}

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};
struct WebpFree {
  void operator()(uint8_t* p) const { WebPFree(p); }
};

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? reason : "unknown error";
}

// Copies `channels`-per-pixel 8-bit data into RGB, keeping the first three channels (alpha dropped, as PIL's
// convert("RGB") does).
Image from_interleaved(const uint8_t* data, int width, int height, int channels) {
  Image image(width, height);
  const size_t count = static_cast<size_t>(width) * static_cast<size_t>(height);
  uint8_t* out = image.pixels.data();
  for (size_t i = 0; i < count; ++i) {
    out[i * 3 + 0] = data[i * channels + 0];
    out[i * 3 + 1] = data[i * channels + 1];
    out[i * 3 + 2] = data[i * channels + 2];
  }
  return image;
}

Image decode_png(std::span<const uint8_t> bytes, const ImageInfo& info) {
  const PngHeader header = png_header(bytes);
  const int length = static_cast<int>(bytes.size());
  int w = 0, h = 0, n = 0;
  if (header.bit_depth == 16 && header.color_type == 0) {
    // PIL opens 16-bit greyscale as mode "I" (32-bit integers); I → RGB clips each value to 0..255 rather than
    // taking the high byte.
    std::unique_ptr<uint16_t, StbFree> data(stbi_load_16_from_memory(bytes.data(), length, &w, &h, &n, 1));
    if (!data) fail(ErrorKind::kInvalidRequest, "PNG image could not be decoded: {}", stb_reason());
    Image image(w, h);
    const size_t count = static_cast<size_t>(w) * static_cast<size_t>(h);
    for (size_t i = 0; i < count; ++i) {
      const uint8_t v = static_cast<uint8_t>(std::min<uint16_t>(data.get()[i], 255));
      image.pixels[i * 3 + 0] = image.pixels[i * 3 + 1] = image.pixels[i * 3 + 2] = v;
    }
    return image;
  }
  std::unique_ptr<uint8_t, StbFree> data(stbi_load_from_memory(bytes.data(), length, &w, &h, &n, 3));
  if (!data) fail(ErrorKind::kInvalidRequest, "PNG image could not be decoded: {}", stb_reason());
  if (w != info.width || h != info.height) fail(ErrorKind::kInternal, "PNG size changed between header and decode");
  return from_interleaved(data.get(), w, h, 3);
}

Image decode_with_stb(std::span<const uint8_t> bytes, const ImageInfo& info) {
  int w = 0, h = 0, n = 0;
  std::unique_ptr<uint8_t, StbFree> data(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n, 3));
  if (!data) {
    fail(ErrorKind::kInvalidRequest, "{} image could not be decoded: {}", image_format_name(info.format), stb_reason());
  }
  if (w != info.width || h != info.height) {
    fail(ErrorKind::kInternal, "{} size changed between header and decode", image_format_name(info.format));
  }
  return from_interleaved(data.get(), w, h, 3);
}

Image decode_gif(std::span<const uint8_t> bytes, const ImageInfo& info) {
  const GifFirstFrame frame = parse_gif(bytes);
  int w = 0, h = 0, n = 0;
  std::unique_ptr<uint8_t, StbFree> data(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n, 4));
  if (!data) fail(ErrorKind::kInvalidRequest, "GIF image could not be decoded: {}", stb_reason());
  if (w != info.width || h != info.height) fail(ErrorKind::kInternal, "GIF size changed between header and decode");
  Image image = from_interleaved(data.get(), w, h, 4);
  const size_t t = static_cast<size_t>(frame.transparent);
  if (frame.transparent >= 0 && t * 3 + 2 < frame.palette.size()) {
    const size_t count = static_cast<size_t>(w) * static_cast<size_t>(h);
    for (size_t i = 0; i < count; ++i) {
      if (data.get()[i * 4 + 3] == 0) std::copy_n(&frame.palette[t * 3], 3, &image.pixels[i * 3]);
    }
  }
  return image;
}

Image decode_webp(std::span<const uint8_t> bytes, const ImageInfo& info) {
  int w = 0, h = 0;
  std::unique_ptr<uint8_t, WebpFree> data(WebPDecodeRGB(bytes.data(), bytes.size(), &w, &h));
  if (!data) fail(ErrorKind::kInvalidRequest, "WebP image could not be decoded (corrupt or truncated data)");
  if (w != info.width || h != info.height) fail(ErrorKind::kInternal, "WebP size changed between header and decode");
  return from_interleaved(data.get(), w, h, 3);
}

}  // namespace

std::string_view image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kGif:
      return "GIF";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kWebp:
      return "WebP";
  }
  return "unknown";
}

std::optional<ImageFormat> detect_image_format(std::span<const uint8_t> b) {
  auto starts = [&](const void* magic, size_t size, size_t at = 0) {
    return b.size() >= at + size && std::memcmp(b.data() + at, magic, size) == 0;
  };
  if (starts(kPngSignature, sizeof kPngSignature)) return ImageFormat::kPng;
  if (starts("\xFF\xD8\xFF", 3)) return ImageFormat::kJpeg;
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return ImageFormat::kGif;
  if (starts("BM", 2)) return ImageFormat::kBmp;
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return ImageFormat::kWebp;
  return std::nullopt;
}

ImageInfo probe_image(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  if (bytes.empty()) fail(ErrorKind::kInvalidRequest, "image data is empty");
  if (bytes.size() > limits.max_bytes || bytes.size() > static_cast<size_t>(INT_MAX)) {
    fail(ErrorKind::kInvalidRequest, "image of {} bytes exceeds the limit of {} bytes", bytes.size(), limits.max_bytes);
  }
  const std::optional<ImageFormat> format = detect_image_format(bytes);
  if (!format) fail(ErrorKind::kInvalidRequest, "unknown image type (expected PNG, JPEG, GIF, BMP or WebP data)");
  ImageInfo info;
  info.format = *format;
  if (*format == ImageFormat::kWebp) {
    WebPBitstreamFeatures features;
    const VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &features);
    if (status == VP8_STATUS_NOT_ENOUGH_DATA) truncated(*format);
    if (status != VP8_STATUS_OK)
      fail(ErrorKind::kInvalidRequest, "WebP image header is corrupt (status {})", static_cast<int>(status));
    if (features.has_animation) fail(ErrorKind::kUnsupported, "animated WebP images are not supported");
    info.width = features.width;
    info.height = features.height;
  } else {
    int comp = 0;
    if (*format == ImageFormat::kPng) {
      const PngHeader header = png_header(bytes);
      info.width = header.width;
      info.height = header.height;
    } else if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &info.width, &info.height, &comp)) {
      fail(ErrorKind::kInvalidRequest, "{} image header could not be read: {}", image_format_name(*format),
           stb_reason());
    }
  }
  if (info.width <= 0 || info.height <= 0) {
    fail(ErrorKind::kInvalidRequest, "{} image has zero size ({}x{})", image_format_name(*format), info.width,
         info.height);
  }
  const uint64_t pixels = static_cast<uint64_t>(info.width) * static_cast<uint64_t>(info.height);
  if (pixels > limits.max_pixels) {
    fail(ErrorKind::kInvalidRequest, "image of {}x{} = {} pixels exceeds the limit of {} pixels", info.width,
         info.height, pixels, limits.max_pixels);
  }
  return info;
}

namespace {

Image decode_pixels(std::span<const uint8_t> bytes, const ImageInfo& info) {
  switch (info.format) {
    case ImageFormat::kPng:
      return decode_png(bytes, info);
    case ImageFormat::kJpeg:
      check_jpeg_complete(bytes);
      return decode_with_stb(bytes, info);
    case ImageFormat::kBmp:
      check_bmp_complete(bytes);
      return decode_with_stb(bytes, info);
    case ImageFormat::kGif:
      return decode_gif(bytes, info);
    case ImageFormat::kWebp:
      return decode_webp(bytes, info);
  }
  fail(ErrorKind::kInternal, "unhandled image format");
}

}  // namespace

Image decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits) {
  const ImageInfo info = probe_image(bytes, limits);
  return apply_exif_orientation(decode_pixels(bytes, info), read_exif_orientation(bytes, info.format));
}

}  // namespace loom::vision
