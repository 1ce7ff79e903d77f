"""Reads safetensors files with numpy and dequantizes MLX-layout quantized weights (docs/FORMATS.md), independently of
loom's C++ dequantizers, so that reference scripts can run transformers on exactly the weights a quantized copy holds:
  affine  w = scale·q + bias                    (q: bits-bit codes, scale/bias per group)
  mxfp4   w = E2M1(q)·2^(e8m0 − 127)            (group 32)
  mxfp8   w = E4M3(q)·2^(e8m0 − 127)            (group 32)
  nvfp4   w = E2M1(q)·E4M3(s)·output_scale      (group 16)
Codes are LSB-first bitstreams in little-endian uint32 words, one stream per row.
"""

import json

import numpy as np

E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float64)


def read_safetensors(path):
    """name → numpy array; BF16/F16 widened to float32, integer types kept as stored."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        raw = data[info["data_offsets"][0]:info["data_offsets"][1]]
        dtype, shape = info["dtype"], info["shape"]
        if dtype == "BF16":
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype == "F16":
            array = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            array = np.frombuffer(raw, dtype={"F32": "<f4", "U32": "<u4", "U8": "u1", "F8_E4M3": "u1",
                                              "F8_E8M0": "u1", "I64": "<i8"}[dtype])
        out[name] = array.reshape(shape)
    return out


def unpack(packed, bits, cols):
    """[rows, words] uint32 → [rows, cols] codes; codes may straddle two words (3, 5, 6 bits)."""
    words = np.concatenate([packed.astype(np.uint64), np.zeros((packed.shape[0], 1), np.uint64)], axis=1)
    position = np.arange(cols, dtype=np.uint64) * np.uint64(bits)
    word, offset = position // np.uint64(32), position % np.uint64(32)
    joined = words[:, word] | (words[:, word + np.uint64(1)] << np.uint64(32))
    return ((joined >> offset) & np.uint64((1 << bits) - 1)).astype(np.int64)


def e4m3(codes):
    codes = codes.astype(np.int64)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exponent, mantissa = (codes >> 3) & 0xF, codes & 0x7
    value = np.where(exponent == 0, mantissa / 8.0 * 2.0 ** -6, (1 + mantissa / 8.0) * 2.0 ** (exponent - 7))
    return sign * value


def e2m1(codes):
    return np.where(codes & 8, -1.0, 1.0) * E2M1[codes & 7]


def dequantize(tensors, module, mode, bits, group, output_scale=1.0):
    """The float64 [rows, cols] matrix of quantized module `module` (tensors `module.weight`, `.scales`, `.biases`)."""
    packed = tensors[module + ".weight"]
    cols = packed.shape[1] * 32 // bits
    q = unpack(packed, bits, cols)
    g = np.arange(cols) // group
    scales = tensors[module + ".scales"]
    if mode == "affine":
        return scales.astype(np.float64)[:, g] * q + tensors[module + ".biases"].astype(np.float64)[:, g]
    if mode in ("mxfp4", "mxfp8"):
        values = e2m1(q) if mode == "mxfp4" else e4m3(q)
        return values * np.exp2(scales.astype(np.float64)[:, g] - 127)
    if mode == "nvfp4":
        return e2m1(q) * e4m3(scales)[:, g] * output_scale
    raise ValueError(mode)
