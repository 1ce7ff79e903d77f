#!/usr/bin/env python3
"""Independent reference for the vision tests: PIL and numpy doing what the transformers PIL image processors do.

Run by the gtest suite with /usr/bin/python3 (Debian python3-pil, python3-numpy). Every command reads a manifest
(one case per line, space-separated) and writes raw little-endian outputs the C++ test compares against:

  decode   <manifest>   lines: <image path> <out path>
           out: PIL ImageOps.exif_transpose(Image.open(path)).convert("RGB") bytes, preceded by width and height as uint32.
  resize   <manifest>   lines: <in raw rgb> <w> <h> <filter 2|3> <out w> <out h> <out path>
           out: Image.resize((out w, out h), filter) bytes.
  gemma3   <manifest>   lines: <in raw rgb> <w> <h> <size> <pan_and_scan 0|1> <out path>
           out: uint32 count, then float32 [count, 3, size, size] (original first, then crops).
  gemma4   <manifest>   lines: <in raw rgb> <w> <h> <max_soft_tokens> <out path>
           out: uint32 num_soft_tokens, float32 [max_patches, 768], int64 [max_patches, 2].
  qwen3vl  <manifest>   lines: <in raw rgb> <w> <h> <min_pixels> <max_pixels> <out path>
           out: uint32 grid t, h, w, then float32 [t*h*w, 1536].
The processor steps follow transformers' PIL backend: resize with PIL on uint8, rescale as float64 * scale cast to
float32, normalise in float32 as (x - mean) / std, then the family's reshape/transpose.
"""

import math
import sys

import numpy as np
from PIL import Image, ImageOps

RESCALE = 1 / 255


def load_raw(path, w, h):
    data = np.fromfile(path, dtype=np.uint8)
    return Image.frombytes("RGB", (w, h), data.tobytes())


def rescale(chw_uint8):
    return (chw_uint8.astype(np.float64) * RESCALE).astype(np.float32)


def normalize(chw, mean, std):
    mean = np.array(mean, dtype=chw.dtype)
    std = np.array(std, dtype=chw.dtype)
    return ((chw.T - mean) / std).T


def to_chw(image):
    return np.asarray(image).transpose(2, 0, 1)


def pil_resize(chw_uint8, height, width, resample):
    if chw_uint8.shape[1:] == (height, width):
        return chw_uint8
    image = Image.fromarray(chw_uint8.transpose(1, 2, 0))
    return to_chw(image.resize((width, height), resample=resample))


def cmd_decode(fields):
    path, out = fields
    with Image.open(path) as image:
        # As transformers' load_image: EXIF orientation first, then RGB.
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    with open(out, "wb") as f:
        f.write(np.array([rgb.shape[1], rgb.shape[0]], dtype="<u4").tobytes())
        f.write(rgb.tobytes())


def cmd_resize(fields):
    src, w, h, filt, ow, oh, out = fields
    image = load_raw(src, int(w), int(h))
    np.asarray(image.resize((int(ow), int(oh)), resample=int(filt))).tofile(out)


def pan_and_scan(chw, min_crop=256, max_crops=4, min_ratio=1.2):
    height, width = chw.shape[1:]
    if width >= height:
        if width / height < min_ratio:
            return []
        nw = int(math.floor(width / height + 0.5))
        nw = min(int(math.floor(width / min_crop)), nw)
        nw = min(max_crops, max(2, nw))
        nh = 1
    else:
        if height / width < min_ratio:
            return []
        nh = int(math.floor(height / width + 0.5))
        nh = min(int(math.floor(height / min_crop)), nh)
        nh = min(max_crops, max(2, nh))
        nw = 1
    cw, ch = int(math.ceil(width / nw)), int(math.ceil(height / nh))
    if min(cw, ch) < min_crop:
        return []
    return [chw[:, y:y + ch, x:x + cw] for y in [ch * i for i in range(nh)] for x in [cw * i for i in range(nw)]]


def cmd_gemma3(fields):
    src, w, h, size, pas, out = fields
    size = int(size)
    chw = to_chw(load_raw(src, int(w), int(h)))
    images = [chw] + (pan_and_scan(chw) if pas == "1" else [])
    result = []
    for img in images:
        img = pil_resize(np.ascontiguousarray(img), size, size, Image.BILINEAR)
        result.append(normalize(rescale(img), [0.5] * 3, [0.5] * 3))
    with open(out, "wb") as f:
        f.write(np.array([len(result)], dtype="<u4").tobytes())
        f.write(np.stack(result).astype("<f4").tobytes())


def gemma4_size(height, width, patch, max_patches, pool):
    target_px = max_patches * patch**2
    factor = math.sqrt(target_px / (height * width))
    side = pool * patch
    th = int(math.floor(factor * height / side)) * side
    tw = int(math.floor(factor * width / side)) * side
    max_side = (max_patches // pool**2) * side
    if th == 0:
        th, tw = side, min(int(math.floor(width / height)) * side, max_side)
    elif tw == 0:
        tw, th = side, min(int(math.floor(height / width)) * side, max_side)
    return th, tw


def cmd_gemma4(fields):
    src, w, h, tokens, out = fields
    patch, pool = 16, 3
    max_patches = int(tokens) * pool * pool
    chw = to_chw(load_raw(src, int(w), int(h)))
    th, tw = gemma4_size(chw.shape[1], chw.shape[2], patch, max_patches, pool)
    img = rescale(pil_resize(chw, th, tw, Image.BICUBIC))
    c, ph, pw = 3, th // patch, tw // patch
    patches = img.reshape(c, ph, patch, pw, patch).transpose(1, 3, 2, 4, 0).reshape(ph * pw, -1)
    gx, gy = np.meshgrid(np.arange(pw), np.arange(ph), indexing="xy")
    pos = np.stack([gx, gy], axis=-1).reshape(-1, 2)
    pad = max_patches - patches.shape[0]
    patches = np.pad(patches, [(0, pad), (0, 0)])
    pos = np.pad(pos, [(0, pad), (0, 0)], constant_values=-1)
    with open(out, "wb") as f:
        f.write(np.array([ph * pw // (pool * pool)], dtype="<u4").tobytes())
        f.write(patches.astype("<f4").tobytes())
        f.write(pos.astype("<i8").tobytes())


def smart_resize(height, width, factor, min_pixels, max_pixels):
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def cmd_qwen3vl(fields):
    src, w, h, min_px, max_px, out = fields
    patch, merge, tps = 16, 2, 2
    chw = to_chw(load_raw(src, int(w), int(h)))
    rh, rw = smart_resize(chw.shape[1], chw.shape[2], patch * merge, int(min_px), int(max_px))
    img = normalize(rescale(pil_resize(chw, rh, rw, Image.BICUBIC)), [0.5] * 3, [0.5] * 3)
    p = np.expand_dims(np.expand_dims(img, 0), 1)  # [1, 1, C, H, W]
    p = np.concatenate([p, np.repeat(p[:, -1:], 1, axis=1)], axis=1)
    gt, gh, gw = 1, rh // patch, rw // patch
    p = p.reshape(1, gt, tps, 3, gh // merge, merge, patch, gw // merge, merge, patch)
    p = p.transpose(0, 1, 4, 7, 5, 8, 3, 2, 6, 9).reshape(gt * gh * gw, 3 * tps * patch * patch)
    with open(out, "wb") as f:
        f.write(np.array([gt, gh, gw], dtype="<u4").tobytes())
        f.write(p.astype("<f4").tobytes())


COMMANDS = {"decode": cmd_decode, "resize": cmd_resize, "gemma3": cmd_gemma3, "gemma4": cmd_gemma4,
            "qwen3vl": cmd_qwen3vl}


def main():
    command, manifest = sys.argv[1], sys.argv[2]
    with open(manifest) as f:
        for line in f:
            if line.strip():
                COMMANDS[command](line.split())


if __name__ == "__main__":
    main()
