#!/usr/bin/env python3
"""Writes the small, deterministic test images under tests/golden/images/ (run from the repository root):

    /usr/bin/python3 tools/reference/make_test_images.py

Needs numpy and PIL (Debian python3-numpy, python3-pil). The pictures are smooth gradients plus seeded noise so that
JPEG and lossy WebP have real texture, in awkward sizes (1x1, 17x400, 1000x37) and in every colour layout the decoder
must convert like PIL's Image.convert("RGB"): palette, grey, grey+alpha, RGBA, 16-bit grey, 1-bit. Next to each
key image, <name>.rgb holds PIL's decode as transformers loads images (ImageOps.exif_transpose(Image.open(f))
.convert("RGB"), raw bytes, row-major) as a committed fixture;
for the key cases; the tests also ask PIL live for all of them.
"""

import os
import sys

import numpy as np
from PIL import Image, ImageOps

OUT = os.path.join("tests", "golden", "images")


def picture(width, height, seed):
    """Gradient + blobs + noise, uint8 HxWx3."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / max(width, 1) * 6.0 + seed)
    g = 255.0 * y / max(height - 1, 1)
    b = 127.5 + 127.5 * np.cos((x + y) / 23.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 18, (height, width, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# Images whose PIL decode is committed next to them as <name>.rgb (the rest are compared with PIL live).
FIXTURES = {"rgb_1000x37.png", "palette_trns_121x89.png", "gray_alpha_121x89.png", "rgba_121x89.png",
            "gray16_40x30.png", "palette_trns_121x89.gif", "photo_121x89.bmp", "photo_121x89_lossy.webp",
            "exif_orientation_5_23x11.png", "exif_orientation_6_23x11.png"}


def save(image, name, **kwargs):
    path = os.path.join(OUT, name)
    image.save(path, **kwargs)
    if name in FIXTURES:
        with Image.open(path) as reopened:
            np.asarray(ImageOps.exif_transpose(reopened).convert("RGB")).tofile(path + ".rgb")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))

    rgb_1x1 = Image.fromarray(picture(1, 1, 1))
    rgb_17x400 = Image.fromarray(picture(17, 400, 2))
    rgb_1000x37 = Image.fromarray(picture(1000, 37, 3))
    photo = Image.fromarray(picture(121, 89, 4))

    save(rgb_1x1, "rgb_1x1.png")
    save(rgb_17x400, "rgb_17x400.png")
    save(rgb_1000x37, "rgb_1000x37.png")

    # Palette (P), with and without a transparent index.
    save(photo.quantize(colors=37), "palette_121x89.png")
    pal = photo.quantize(colors=16)
    save(pal, "palette_trns_121x89.png", transparency=3)
    save(photo.convert("L"), "gray_121x89.png")
    save(photo.convert("1"), "bilevel_121x89.png")

    la = np.stack([np.asarray(photo.convert("L")), np.asarray(photo)[..., 0]], axis=-1)
    save(Image.fromarray(la, "LA"), "gray_alpha_121x89.png")
    rgba = np.concatenate([np.asarray(photo), (np.arange(121 * 89) % 256).astype(np.uint8).reshape(89, 121, 1)], -1)
    save(Image.fromarray(rgba, "RGBA"), "rgba_121x89.png")

    # 16-bit greyscale: PIL opens it as mode I and clips on conversion, so spread values across 0..1023.
    g16 = (np.arange(40 * 30, dtype=np.uint32).reshape(30, 40) * 37 % 1024).astype(np.uint16)
    save(Image.fromarray(g16), "gray16_40x30.png")
    # 16-bit RGB (high byte on conversion), written through a raw PNG since PIL cannot save 16-bit RGB.
    rgb16 = (picture(21, 13, 5).astype(np.uint16) * 257 + np.arange(21 * 13 * 3).reshape(13, 21, 3).astype(np.uint16))
    write_png16_rgb(os.path.join(OUT, "rgb16_21x13.png"), rgb16)

    save(photo, "photo_121x89_q90.jpg", quality=90)
    save(photo, "photo_121x89_444.jpg", quality=95, subsampling=0)
    save(photo, "photo_121x89_progressive.jpg", quality=80, progressive=True)
    save(photo.convert("L"), "gray_121x89.jpg", quality=90)
    save(rgb_17x400, "rgb_17x400.jpg", quality=85)
    save(rgb_1000x37, "rgb_1000x37.jpg", quality=85)
    save(rgb_1x1, "rgb_1x1.jpg")

    save(pal, "palette_121x89.gif")
    save(pal, "palette_trns_121x89.gif", transparency=5)
    save(rgb_1x1.quantize(colors=2), "rgb_1x1.gif")

    save(photo, "photo_121x89.bmp")
    save(rgb_17x400, "rgb_17x400.bmp")
    save(pal, "palette_121x89.bmp")
    save(photo.convert("L"), "gray_121x89.bmp")

    save(photo, "photo_121x89_lossless.webp", lossless=True)
    save(photo, "photo_121x89_lossy.webp", quality=80)
    save(Image.fromarray(rgba, "RGBA"), "rgba_121x89_lossy.webp", quality=80)
    save(Image.fromarray(rgba, "RGBA"), "rgba_121x89_lossless.webp", lossless=True, exact=True)
    save(rgb_1000x37, "rgb_1000x37_lossless.webp", lossless=True)

    # EXIF orientation 1..8 (transformers' load_image applies ImageOps.exif_transpose): lossless PNG for exact
    # checks, plus JPEG and WebP containers of the same tag.
    upright = Image.fromarray(picture(23, 11, 6))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        save(upright, f"exif_orientation_{orientation}_23x11.png", exif=exif.tobytes())
    exif = Image.Exif()
    exif[0x0112] = 6
    save(photo, "exif_orientation_6_121x89.jpg", quality=90, exif=exif.tobytes())
    exif[0x0112] = 8
    save(upright, "exif_orientation_8_23x11_lossless.webp", lossless=True, exif=exif.tobytes())

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {OUT}")
    if total > 2 * 1024 * 1024:
        sys.exit("test images exceed 2 MB")


def write_png16_rgb(path, rgb16):
    import struct
    import zlib

    height, width, _ = rgb16.shape

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


if __name__ == "__main__":
    main()
