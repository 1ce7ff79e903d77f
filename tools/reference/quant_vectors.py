#!/usr/bin/env python3
"""Known-answer vectors for loom's MLX-format quantizers, from an independent numpy implementation.

What it writes: tests/golden/quant/manifest.json and one <case>.bin per case. Each .bin is a concatenation of
little-endian sections whose [offset, length] (bytes) are listed in the manifest:
  input    float32 [rows, cols]   the matrix handed to the quantizer
  words    uint32  [rows, cols*bits/32]   expected packed codes (MLX layout: LSB-first bitstream per row)
  scales   scale dtype [rows, groups]     expected scale bytes (BF16/F16/F32 for affine, uint8 for mx/nv modes)
  biases   scale dtype [rows, groups]     affine only
  dequant  float32 [rows, cols]   expected dequantization of (words, scales, biases)
Cases: affine bits {2,3,4,5,6,8} x group {32,64,128} (BF16 scales), affine 4/64 with F16 and F32 scales, mxfp4,
mxfp8, nvfp4 without and with a global scale. Rows mix random data with edge groups: all zero, constant,
negative-dominant, and values exactly at rounding ties.

The algorithms are re-implemented here from weight-formats.md §2 (MLX's CPU quantizer: float32 arithmetic, q from
the unrounded float32 scale/bias, round-half-even), deliberately by different means than the C++ code: FP4/FP8
encoding is a nearest-value search over the code tables with ties to the even code, E8M0 uses float64 log2, bit
packing goes through numpy.packbits, bf16 rounding is integer arithmetic on float32 bits, f16 is numpy's own cast.

Run from the repository root (deterministic; numpy only):
    /usr/bin/python3 tools/reference/quant_vectors.py
"""

import json
import os
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden", "quant")
ROWS, COLS = 4, 256
F32 = np.float32

E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float64)


def e4m3_values():
    """Magnitudes of the positive finite E4M3FN codes 0..0x7E, from the field formula."""
    out = []
    for code in range(0x7F):
        e, m = code >> 3, code & 7
        out.append((m / 8) * 2.0**-6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))
    return np.array(out, dtype=np.float64)


E4M3 = e4m3_values()


def nearest_code(x, table):
    """Index of the nearest table entry to |x| with ties to the even index; the sign goes to the top bit."""
    x = np.asarray(x, dtype=F32)
    mag = np.abs(x.astype(np.float64))
    dist = np.abs(mag[..., None] - table)
    best = dist.min(axis=-1, keepdims=True)
    candidates = dist == best
    # Among equally near entries prefer an even index; there are at most two and they are adjacent.
    even = candidates & (np.arange(len(table)) % 2 == 0)
    idx = np.where(even.any(axis=-1), even.argmax(axis=-1), candidates.argmax(axis=-1))
    return idx, np.signbit(x)


def to_e2m1(x):
    idx, neg = nearest_code(x, E2M1)
    return (idx | (neg.astype(np.int64) << 3)).astype(np.uint8)


def to_e4m3(x):
    idx, neg = nearest_code(x, E4M3)
    return (idx | (neg.astype(np.int64) << 7)).astype(np.uint8)


def e4m3_decode(code):
    code = np.asarray(code, dtype=np.int64)
    mag = E4M3[np.minimum(code & 0x7F, 0x7E)]
    return np.where(code & 0x80, -mag, mag).astype(F32)


def e2m1_decode(code):
    code = np.asarray(code, dtype=np.int64)
    mag = E2M1[code & 7]
    return np.where(code & 8, -mag, mag).astype(F32)


def to_e8m0(x):
    x = np.asarray(x, dtype=F32).astype(np.float64)
    with np.errstate(divide="ignore"):
        e = np.round(np.log2(x))
    return (np.clip(e, -127, 127) + 127).astype(np.uint8)


def e8m0_decode(code):
    return np.ldexp(F32(1), np.asarray(code, dtype=np.int32) - 127).astype(F32)


def bf16_bits(x):
    bits = np.asarray(x, dtype=F32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(F32)


def pack_rows(codes, bits):
    """codes [rows, cols] -> uint32 words [rows, cols*bits/32], element i at bits [i*bits, (i+1)*bits)."""
    rows, cols = codes.shape
    as_bits = np.unpackbits(codes.astype(np.uint8)[..., None], axis=-1, bitorder="little")[..., :bits]
    stream = as_bits.reshape(rows, cols * bits)
    return np.packbits(stream, axis=-1, bitorder="little").view("<u4").reshape(rows, cols * bits // 32)


def affine(w, bits, group, scale_dtype):
    n_bins = F32(2**bits - 1)
    g = w.reshape(ROWS, -1, group)
    w_max, w_min = g.max(axis=-1), g.min(axis=-1)
    mask = np.abs(w_min) > np.abs(w_max)
    scale = np.maximum((w_max - w_min) / n_bins, F32(1e-7)).astype(F32)
    scale = np.where(mask, scale, -scale).astype(F32)
    edge = np.where(mask, w_min, w_max).astype(F32)
    q0 = np.rint(edge / scale).astype(F32)
    nonzero = q0 != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(nonzero, edge / q0, scale).astype(F32)
    bias = np.where(nonzero, edge, F32(0)).astype(F32)
    q = np.clip(np.rint((g - bias[..., None]) / scale[..., None]), F32(0), n_bins).astype(np.uint8)
    if scale_dtype == "BF16":
        s_bits, b_bits = bf16_bits(scale), bf16_bits(bias)
        s_val, b_val = bf16_value(s_bits), bf16_value(b_bits)
        s_bytes, b_bytes = s_bits.tobytes(), b_bits.tobytes()
    elif scale_dtype == "F16":
        s16, b16 = scale.astype(np.float16), bias.astype(np.float16)
        s_val, b_val = s16.astype(F32), b16.astype(F32)
        s_bytes, b_bytes = s16.tobytes(), b16.tobytes()
    else:
        s_val, b_val = scale, bias
        s_bytes, b_bytes = scale.tobytes(), bias.tobytes()
    deq = (s_val[..., None] * q.astype(F32)).astype(F32) + b_val[..., None]
    return pack_rows(q.reshape(ROWS, COLS), bits), s_bytes, b_bytes, deq.astype(F32).reshape(ROWS, COLS)


def fp_mode(w, mode, global_scale=None):
    group = 16 if mode == "nvfp4" else 32
    g = w.reshape(ROWS, -1, group)
    amax = np.abs(g).max(axis=-1).astype(F32)
    t = F32(1)
    if mode == "nvfp4":
        if global_scale is not None:
            t = F32(global_scale) / F32(2688)
            s = to_e4m3((amax / F32(6)).astype(F32) / t)
            divisor = (e4m3_decode(s) * t).astype(F32)
        else:
            s = to_e4m3((amax / F32(6)).astype(F32))
            divisor = e4m3_decode(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (g / divisor[..., None]).astype(F32)
        q = np.where(divisor[..., None] == 0, np.uint8(0), to_e2m1(ratio))
        deq = ((e2m1_decode(q) * e4m3_decode(s)[..., None]).astype(F32) * t).astype(F32)
        bits = 4
    else:
        max_code = F32(6) if mode == "mxfp4" else F32(448)
        s = to_e8m0((amax / max_code).astype(F32))
        divisor = e8m0_decode(s)
        ratio = (g / divisor[..., None]).astype(F32)
        if mode == "mxfp4":
            q, bits = to_e2m1(ratio), 4
            deq = (e2m1_decode(q) * divisor[..., None]).astype(F32)
        else:
            q, bits = to_e4m3(ratio), 8
            deq = (e4m3_decode(q) * divisor[..., None]).astype(F32)
    return pack_rows(q.reshape(ROWS, COLS), bits), s.astype(np.uint8).tobytes(), b"", deq.reshape(ROWS, COLS), t


def midpoints(table):
    return [(a + b) / 2 for a, b in zip(table[:-1], table[1:])]


def make_input(rng, group, tie_values, tie_edges):
    """Row 0 random; rows 1-2 edge groups (zero, constant, negative-dominant, ties); row 3 random, varied scale."""
    w = np.empty((ROWS, COLS), dtype=F32)
    w[0] = rng.normal(0, 0.05, COLS)
    w[3] = rng.normal(0, 1, COLS) * np.repeat(np.exp2(rng.uniform(-8, 4, COLS // group)), group)
    for row, shift in ((1, 0), (2, 2)):
        for gi in range(COLS // group):
            pattern = (gi + shift) % 4
            x = np.zeros(group)
            if pattern == 1:
                x[:] = 0.3 if gi % 2 == 0 else -1.75
            elif pattern == 2:
                x = -np.abs(rng.normal(0, 0.5, group))
                x[::7] = rng.uniform(0, 0.05, len(x[::7]))
            elif pattern == 3:
                x = np.resize(np.array(tie_values, dtype=np.float64), group)
                x[: len(tie_edges)] = tie_edges
            w[row, gi * group:(gi + 1) * group] = x
    # Inputs that MLX would see after the bf16 cast, except the tie rows, which must stay exact.
    rounded = bf16_value(bf16_bits(w))
    for row in (1, 2):
        for gi in range(COLS // group):
            if (gi + (0 if row == 1 else 2)) % 4 == 3:
                rounded[row, gi * group:(gi + 1) * group] = w[row, gi * group:(gi + 1) * group]
    return rounded.astype(F32)


def main():
    rng = np.random.default_rng(20240601)
    os.makedirs(OUT, exist_ok=True)
    cases = []

    def write(name, spec, w, words, scales, biases, deq, output_scale=F32(1)):
        sections, blob = {}, b""
        for key, data in (("input", w.astype("<f4").tobytes()), ("words", words.astype("<u4").tobytes()),
                          ("scales", scales), ("biases", biases), ("dequant", deq.astype("<f4").tobytes())):
            sections[key] = [len(blob), len(data)]
            blob += data
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(blob)
        cases.append(dict(name=name, rows=ROWS, cols=COLS, file=name + ".bin", sections=sections,
                          output_scale_bits=int(np.array(output_scale, dtype=F32).view(np.uint32)), **spec))

    for bits in (2, 3, 4, 5, 6, 8):
        n = 2**bits - 1
        # min 0 and max n give scale exactly -1 and bias n, so k + 0.5 lands exactly halfway between two codes.
        ties = [k + 0.5 for k in range(n)]
        for group in (32, 64, 128):
            w = make_input(rng, group, ties, [0.0, float(n)])
            dtypes = ("BF16", "F16", "F32") if (bits, group) == (4, 64) else ("BF16",)
            for dt in dtypes:
                words, s, b, deq = affine(w, bits, group, dt)
                suffix = "" if dt == "BF16" else "_" + dt.lower()
                write(f"affine_b{bits}_g{group}{suffix}",
                      dict(mode="affine", bits=bits, group_size=group, scale_dtype=dt), w, words, s, b, deq)

    fp4_ties = midpoints(list(E2M1))
    fp4_ties += [-v for v in fp4_ties]
    w = make_input(rng, 32, fp4_ties, [6.0])
    words, s, _, deq, _ = fp_mode(w, "mxfp4")
    write("mxfp4", dict(mode="mxfp4", bits=4, group_size=32, scale_dtype="U8"), w, words, s, b"", deq)

    fp8_ties = midpoints(list(E4M3))[::4]
    fp8_ties += [-v for v in fp8_ties]
    w = make_input(rng, 32, fp8_ties, [448.0])
    words, s, _, deq, _ = fp_mode(w, "mxfp8")
    write("mxfp8", dict(mode="mxfp8", bits=8, group_size=32, scale_dtype="U8"), w, words, s, b"", deq)

    w = make_input(rng, 16, fp4_ties, [6.0])
    words, s, _, deq, _ = fp_mode(w, "nvfp4")
    write("nvfp4", dict(mode="nvfp4", bits=4, group_size=16, scale_dtype="U8"), w, words, s, b"", deq)

    w = make_input(rng, 16, fp4_ties, [6.0])
    g = float(np.abs(w).max())
    words, s, _, deq, t = fp_mode(w, "nvfp4", global_scale=g)
    write("nvfp4_global", dict(mode="nvfp4", bits=4, group_size=16, scale_dtype="U8",
                               global_scale_bits=int(np.array(g, dtype=F32).view(np.uint32))),
          w, words, s, b"", deq, output_scale=t)

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"generator": "tools/reference/quant_vectors.py", "cases": cases}, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, c["file"])) for c in cases)
    print(f"wrote {len(cases)} cases, {total} bytes, to {os.path.relpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
