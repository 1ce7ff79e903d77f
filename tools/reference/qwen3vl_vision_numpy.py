#!/usr/bin/env python3
"""A numpy model of the Qwen3-VL vision tower (transformers 5.17 Qwen3VLVisionModel semantics) and the small fixture
loom's tower is tested against where torch is not available.

Run from the repository root with plain python3 + numpy (deterministic, fixed seed, well under a second):
    python3 tools/reference/qwen3vl_vision_numpy.py [OUT_DIR]     (default tests/golden/models)
Writes
  OUT_DIR/qwen3vl_vision_numpy/           config.json (vision depth 3, hidden 32, 2 heads, patch 4, temporal 2,
                                          merge 2, a 6x6 position table, deepstack at blocks [2, 0]) and
                                          model.safetensors (matrices, conv and position table in bf16, norms and
                                          biases in f32), canonical "model.visual.*" names
  OUT_DIR/qwen3vl_vision_numpy_expected/  cases.json and, per case k, little-endian float32 files:
                                          case_k_pixels.f32      pixel rows [t*h*w, 3*2*4*4] (random, N(0, 1))
                                          case_k_position.f32    resampled position embedding [t*h*w, 32]
                                          case_k_embeddings.f32  merger output [t*h*w/4, 24]
                                          case_k_deepstack_j.f32 deepstack feature j (layer order) [t*h*w/4, 24]
                                          and in cases.json the RoPE (row, col) ids of every row.
The reference is written independently of loom from the transformers formulation: raster position ids reshaped
into merge blocks, the position table resampled in raster order with torch.linspace-style coordinates and then
reordered, cos/sin built as cat(cat(f_row, f_col), same) with rotate-half, LayerNorm eps 1e-6, math in float64 on
the bf16-rounded weights.
"""

import json
import math
import os
import struct
import sys

import numpy as np

SEED = 20251
HIDDEN, HEADS, INTER, DEPTH = 32, 2, 48, 3
PATCH, TEMPORAL, MERGE, CHANNELS = 4, 2, 2, 3
OUT_HIDDEN = 24
SIDE = 6
DEEPSTACK = [2, 0]  # merger 0 reads block 2, merger 1 block 0: outputs come in layer order (block 0 first)
THETA = 10000.0
EPS = 1e-6
# (t, h, w): wider than tall (upsampled columns, downsampled rows), taller than wide, a two-frame grid (each frame
# attends only to itself), and the smallest grid.
GRIDS = [(1, 4, 8), (1, 10, 2), (2, 4, 4), (1, 2, 2)]

CONFIG = {
    "architectures": ["Qwen3VLForConditionalGeneration"],
    "model_type": "qwen3_vl",
    "image_token_id": 151655,
    "text_config": {"model_type": "qwen3_vl_text", "hidden_size": OUT_HIDDEN},
    "vision_config": {
        "model_type": "qwen3_vl_vision",
        "depth": DEPTH,
        "hidden_size": HIDDEN,
        "hidden_act": "gelu_pytorch_tanh",
        "intermediate_size": INTER,
        "num_heads": HEADS,
        "in_channels": CHANNELS,
        "patch_size": PATCH,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL,
        "out_hidden_size": OUT_HIDDEN,
        "num_position_embeddings": SIDE * SIDE,
        "deepstack_visual_indexes": DEEPSTACK,
    },
}


def bf16_bits(x):
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_round(x):
    return (bf16_bits(x).astype(np.uint32) << 16).view(np.float32)


def make_weights(rng):
    """name -> (float32 array as the model sees it, stored dtype)."""
    w = {}

    def add(name, shape, std, dtype="BF16", mean=0.0):
        value = (mean + std * rng.standard_normal(shape)).astype(np.float32)
        w[name] = (bf16_round(value) if dtype == "BF16" else value, dtype)

    v = "model.visual."
    add(v + "patch_embed.proj.weight", (HIDDEN, CHANNELS, TEMPORAL, PATCH, PATCH), 0.15)
    add(v + "patch_embed.proj.bias", (HIDDEN,), 0.1, "F32")
    add(v + "pos_embed.weight", (SIDE * SIDE, HIDDEN), 1.0)
    for i in range(DEPTH):
        b = f"{v}blocks.{i}."
        add(b + "norm1.weight", (HIDDEN,), 0.2, "F32", 1.0)
        add(b + "norm1.bias", (HIDDEN,), 0.1, "F32")
        add(b + "norm2.weight", (HIDDEN,), 0.2, "F32", 1.0)
        add(b + "norm2.bias", (HIDDEN,), 0.1, "F32")
        add(b + "attn.qkv.weight", (3 * HIDDEN, HIDDEN), 0.5)
        add(b + "attn.qkv.bias", (3 * HIDDEN,), 0.2, "F32")
        add(b + "attn.proj.weight", (HIDDEN, HIDDEN), 0.3)
        add(b + "attn.proj.bias", (HIDDEN,), 0.1, "F32")
        add(b + "mlp.linear_fc1.weight", (INTER, HIDDEN), 0.3)
        add(b + "mlp.linear_fc1.bias", (INTER,), 0.1, "F32")
        add(b + "mlp.linear_fc2.weight", (HIDDEN, INTER), 0.3)
        add(b + "mlp.linear_fc2.bias", (HIDDEN,), 0.1, "F32")
    wide = HIDDEN * MERGE * MERGE
    mergers = [(v + "merger.", HIDDEN)] + [(f"{v}deepstack_merger_list.{j}.", wide) for j in range(len(DEEPSTACK))]
    for m, norm_width in mergers:
        add(m + "norm.weight", (norm_width,), 0.2, "F32", 1.0)
        add(m + "norm.bias", (norm_width,), 0.1, "F32")
        add(m + "linear_fc1.weight", (wide, wide), 0.2)
        add(m + "linear_fc1.bias", (wide,), 0.1, "F32")
        add(m + "linear_fc2.weight", (OUT_HIDDEN, wide), 0.2)
        add(m + "linear_fc2.bias", (OUT_HIDDEN,), 0.1, "F32")
    return w


def write_safetensors(path, weights):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (value, dtype) in weights.items():
        data = bf16_bits(value).astype("<u2").tobytes() if dtype == "BF16" else value.astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(value.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


# --- the reference model (float64)

def to_merge_blocks(raster, h, w):
    """[h*w, ...] in raster order -> merge-block order (reshape (h/m, m, w/m, m), swap the middle axes)."""
    rest = raster.shape[1:]
    return raster.reshape((h // MERGE, MERGE, w // MERGE, MERGE) + rest).transpose(
        (0, 2, 1, 3) + tuple(range(4, 4 + len(rest)))).reshape((h * w,) + rest)


def rope_ids(t, h, w):
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ids = np.stack([to_merge_blocks(rows.reshape(-1), h, w), to_merge_blocks(cols.reshape(-1), h, w)], axis=-1)
    return np.tile(ids, (t, 1))


def position_embedding(table, t, h, w):
    """Bilinear, align-corners: coordinates linspace(0, SIDE-1, n), corners floor and min(floor+1, SIDE-1)."""
    grid = table.reshape(SIDE, SIDE, -1)
    ys = np.linspace(0, SIDE - 1, h)
    xs = np.linspace(0, SIDE - 1, w)
    out = np.zeros((h, w, table.shape[1]))
    for i, y in enumerate(ys):
        y0 = int(math.floor(y))
        y1 = min(y0 + 1, SIDE - 1)
        dy = y - y0
        for j, x in enumerate(xs):
            x0 = int(math.floor(x))
            x1 = min(x0 + 1, SIDE - 1)
            dx = x - x0
            out[i, j] = ((1 - dy) * (1 - dx) * grid[y0, x0] + (1 - dy) * dx * grid[y0, x1]
                         + dy * (1 - dx) * grid[y1, x0] + dy * dx * grid[y1, x1])
    return np.tile(to_merge_blocks(out.reshape(h * w, -1), h, w), (t, 1))


def layer_norm(x, weight, bias):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * weight + bias


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def tower(W, pixels, t, h, w):
    g = lambda name: W["model.visual." + name][0].astype(np.float64)  # noqa: E731
    n = t * h * w
    head_dim = HIDDEN // HEADS
    x = pixels.astype(np.float64) @ g("patch_embed.proj.weight").reshape(HIDDEN, -1).T + g("patch_embed.proj.bias")
    x = x + position_embedding(g("pos_embed.weight"), t, h, w)
    ids = rope_ids(t, h, w).astype(np.float64)
    spatial = head_dim // 2
    inv_freq = 1.0 / THETA ** (np.arange(0, spatial, 2) / spatial)
    freqs = np.concatenate([ids[:, :1] * inv_freq, ids[:, 1:] * inv_freq], axis=-1)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]

    def merger(prefix, y, postshuffle):
        wide = HIDDEN * MERGE * MERGE
        if postshuffle:
            y = layer_norm(y.reshape(-1, wide), g(prefix + "norm.weight"), g(prefix + "norm.bias"))
        else:
            y = layer_norm(y, g(prefix + "norm.weight"), g(prefix + "norm.bias")).reshape(-1, wide)
        y = gelu_erf(y @ g(prefix + "linear_fc1.weight").T + g(prefix + "linear_fc1.bias"))
        return y @ g(prefix + "linear_fc2.weight").T + g(prefix + "linear_fc2.bias")

    deepstack = []
    for i in range(DEPTH):
        b = f"blocks.{i}."
        y = layer_norm(x, g(b + "norm1.weight"), g(b + "norm1.bias"))
        qkv = (y @ g(b + "attn.qkv.weight").T + g(b + "attn.qkv.bias")).reshape(n, 3, HEADS, head_dim)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        attended = np.zeros_like(q)
        for f in range(t):  # cu_seqlens: one sequence per frame
            s = slice(f * h * w, (f + 1) * h * w)
            for hd in range(HEADS):
                logits = q[s, hd] @ k[s, hd].T / math.sqrt(head_dim)
                p = np.exp(logits - logits.max(-1, keepdims=True))
                attended[s, hd] = (p / p.sum(-1, keepdims=True)) @ v[s, hd]
        x = x + attended.reshape(n, HIDDEN) @ g(b + "attn.proj.weight").T + g(b + "attn.proj.bias")
        y = layer_norm(x, g(b + "norm2.weight"), g(b + "norm2.bias"))
        y = gelu_tanh(y @ g(b + "mlp.linear_fc1.weight").T + g(b + "mlp.linear_fc1.bias"))
        x = x + y @ g(b + "mlp.linear_fc2.weight").T + g(b + "mlp.linear_fc2.bias")
        if i in DEEPSTACK:
            deepstack.append(merger(f"deepstack_merger_list.{DEEPSTACK.index(i)}.", x, True))
    return merger("merger.", x, False), deepstack


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "golden", "models")
    rng = np.random.default_rng(SEED)
    weights = make_weights(rng)
    snapshot = os.path.join(out, "qwen3vl_vision_numpy")
    expected = os.path.join(out, "qwen3vl_vision_numpy_expected")
    os.makedirs(snapshot, exist_ok=True)
    os.makedirs(expected, exist_ok=True)
    with open(os.path.join(snapshot, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(snapshot, "model.safetensors"), weights)

    def dump(name, array):
        np.asarray(array, dtype="<f4").tofile(os.path.join(expected, name))
        return name

    cases = []
    for k, (t, h, w) in enumerate(GRIDS):
        pixels = rng.standard_normal((t * h * w, CHANNELS * TEMPORAL * PATCH * PATCH)).astype(np.float32)
        embeddings, deepstack = tower(weights, pixels, t, h, w)
        position = position_embedding(weights["model.visual.pos_embed.weight"][0].astype(np.float64), t, h, w)
        cases.append({
            "grid_thw": [t, h, w],
            "soft_tokens": t * h * w // (MERGE * MERGE),
            "pixels": dump(f"case_{k}_pixels.f32", pixels),
            "position_embedding": dump(f"case_{k}_position.f32", position),
            "embeddings": dump(f"case_{k}_embeddings.f32", embeddings),
            "deepstack": [dump(f"case_{k}_deepstack_{j}.f32", d) for j, d in enumerate(deepstack)],
            "rope_ids": rope_ids(t, h, w).tolist(),
        })
    with open(os.path.join(expected, "cases.json"), "w") as f:
        json.dump({"hidden_size": HIDDEN, "out_hidden_size": OUT_HIDDEN, "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
