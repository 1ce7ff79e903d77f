#pragma once
// EXIF orientation, applied as transformers' `load_image` applies it (PIL.ImageOps.exif_transpose before
// convert("RGB")): a phone photo stored sideways with an orientation tag reaches the model upright, in the same
// pixel order the reference processor sees.

#include <cstdint>
#include <span>

#include "vision/image.h"
#include "vision/image_decode.h"

namespace loom::vision {

// The orientation tag (1..8) of the image's EXIF block — JPEG APP1 "Exif", PNG eXIf chunk or WebP EXIF chunk — or 1
// when there is none, it cannot be read, or its value is out of range. Never throws: a broken EXIF block does not
// make a readable image unreadable (PIL ignores it too).
int read_exif_orientation(std::span<const uint8_t> bytes, ImageFormat format);

// The image turned upright for orientation 1..8 (2 mirror, 3 rotate 180°, 4 flip, 5 transpose, 6 rotate 90°
// clockwise, 7 transverse, 8 rotate 90° counter-clockwise); 5–8 swap width and height.
Image apply_exif_orientation(const Image& image, int orientation);

}  // namespace loom::vision
