"""A numpy restatement of transformers' Gemma 4 vision tower (Gemma4VisionModel + Gemma4MultimodalEmbedder, 5.17) and
the tiny fixture loom's tests check its C++ tower against when the transformers golden fixture is not at hand.

The math follows transformers' formulation step by step, not loom's: the image stays padded to its patch budget and
padding is handled by the additive attention mask and masked_fill; RoPE builds cos/sin as cat(fx, fx, fy, fy) and
applies rotate_half to each half after torch.split; the pooler is the one-hot matrix product with the
"any weight ≠ 0" slot mask; Gemma4ClippableLinear clamps input and output.

Run (numpy only, no network):
    /usr/bin/python3 tools/reference/gemma4_vision_numpy.py tests/golden/models
Writes OUT_DIR/numpy_gemma4_vision/ (config.json, model.safetensors: float32, random weights, finite clip bounds,
standardize on) and OUT_DIR/numpy_gemma4_vision_expected/ (cases.json and little-endian float32/int64 .bin files):
  - tower cases: pixel values [patches, 3·p²], position ids [patches, 2], soft tokens before the embedder
    [tokens, hidden] and embeddings [tokens, text hidden];
  - rope case: x [T, heads, head_dim], positions (x, y) and the rotated result;
  - pooler case: hidden [patches, hidden] with shuffled and padded positions, the pooled tokens (before ×sqrt(hidden)).
"""

import json
import os
import struct
import sys

import numpy as np

SEED = 4242
CONFIG = dict(
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    hidden_activation="gelu_pytorch_tanh",
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "axial", "rope_theta": 100.0},
    pooling_kernel_size=3,
    patch_size=4,
    position_embedding_size=16,
    use_clipped_linears=True,
    standardize=True,
    model_type="gemma4_vision",
)
TEXT_HIDDEN = 24
F32 = np.float32


def gelu_tanh(x):
    x = x.astype(np.float64)
    return (0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))).astype(F32)


def rms_norm(x, weight, eps):
    x64 = x.astype(np.float64)
    normed = x64 * np.power(np.mean(x64 * x64, axis=-1, keepdims=True) + eps, -0.5)
    if weight is not None:
        normed = normed * weight
    return normed.astype(F32)


def clippable(w, name, x):
    lo, hi = w[name + ".input_min"], w[name + ".input_max"]
    x = np.clip(x, lo, hi)
    y = x.astype(np.float64) @ w[name + ".linear.weight"].T.astype(np.float64)
    return np.clip(y, w[name + ".output_min"], w[name + ".output_max"]).astype(F32)


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rope_cos_sin(positions, head_dim, theta):
    """Gemma4VisionRotaryEmbedding: inv_freq over head_dim/2, cos/sin recomposed as [fx, fx, fy, fy]."""
    spatial = head_dim // 2
    inv_freq = (1.0 / theta ** (np.arange(0, spatial, 2, dtype=F32) / spatial)).astype(F32)
    freqs = positions[..., None].astype(F32) * inv_freq  # [T, 2, head_dim/4]
    cos, sin = np.cos(freqs), np.sin(freqs)
    recompose = lambda f: np.concatenate([f[:, 0], f[:, 0], f[:, 1], f[:, 1]], axis=-1)  # noqa: E731
    return recompose(cos), recompose(sin)


def apply_multidimensional_rope(x, cos, sin):
    """x [T, heads, D]; split D into 2 parts, rotate each with its part of cos/sin."""
    part = 2 * (x.shape[-1] // 4)
    out = []
    for k in range(2):
        xs = x[..., k * part:(k + 1) * part]
        c, s = cos[:, None, k * part:(k + 1) * part], sin[:, None, k * part:(k + 1) * part]
        out.append(xs * c + rotate_half(xs) * s)
    return np.concatenate(out, axis=-1).astype(F32)


def attention(w, prefix, x, positions, padding, c):
    t = x.shape[0]
    heads, kv_heads, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    eps = c["rms_norm_eps"]
    cos, sin = rope_cos_sin(positions, d, c["rope_parameters"]["rope_theta"])
    q = clippable(w, prefix + "q_proj", x).reshape(t, heads, d)
    q = apply_multidimensional_rope(rms_norm(q, w[prefix + "q_norm.weight"], eps), cos, sin)
    k = clippable(w, prefix + "k_proj", x).reshape(t, kv_heads, d)
    k = apply_multidimensional_rope(rms_norm(k, w[prefix + "k_norm.weight"], eps), cos, sin)
    v = rms_norm(clippable(w, prefix + "v_proj", x).reshape(t, kv_heads, d), None, eps)
    groups = heads // kv_heads
    k = np.repeat(k, groups, axis=1)
    v = np.repeat(v, groups, axis=1)
    # Bidirectional mask: padding keys get the dtype minimum (scaling 1.0).
    mask = np.where(padding[None, :], np.finfo(F32).min, 0.0)
    out = np.zeros((t, heads, d), dtype=np.float64)
    for hd in range(heads):
        logits = q[:, hd].astype(np.float64) @ k[:, hd].T.astype(np.float64) + mask
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=-1, keepdims=True)
        out[:, hd] = p @ v[:, hd].astype(np.float64)
    return clippable(w, prefix + "o_proj", out.reshape(t, heads * d).astype(F32))


def pool(hidden, positions, length, k):
    """Gemma4VisionPooler._avg_pool_by_positions."""
    clamped = np.maximum(positions, 0)
    max_x = clamped[:, 0].max() + 1
    idx = clamped // k
    idx = idx[:, 0] + (max_x // k) * idx[:, 1]
    weights = np.zeros((hidden.shape[0], length), dtype=F32)
    weights[np.arange(hidden.shape[0]), idx] = 1.0
    weights /= k * k
    out = (weights.T.astype(np.float64) @ hidden.astype(np.float64)).astype(F32)
    mask = ~(weights == 0).all(axis=0)
    return out, mask


def tower(w, pixels, positions, c):
    """Gemma4VisionModel.forward + Gemma4MultimodalEmbedder for one image (batch 1)."""
    eps = c["rms_norm_eps"]
    k = c["pooling_kernel_size"]
    length = pixels.shape[0] // (k * k)
    padding = (positions == -1).all(axis=-1)
    p = "vision_tower."
    x = (2 * (pixels - F32(0.5))).astype(F32)
    x = (x.astype(np.float64) @ w[p + "patch_embedder.input_proj.weight"].T.astype(np.float64)).astype(F32)
    table = w[p + "patch_embedder.position_embedding_table"]
    clamped = np.maximum(positions, 0)
    pos_emb = table[0][clamped[:, 0]] + table[1][clamped[:, 1]]
    x = x + np.where(padding[:, None], 0.0, pos_emb).astype(F32)
    for i in range(c["num_hidden_layers"]):
        l = f"{p}encoder.layers.{i}."
        h = rms_norm(x, w[l + "input_layernorm.weight"], eps)
        h = attention(w, l + "self_attn.", h, positions, padding, c)
        x = x + rms_norm(h, w[l + "post_attention_layernorm.weight"], eps)
        h = rms_norm(x, w[l + "pre_feedforward_layernorm.weight"], eps)
        m = l + "mlp."
        h = clippable(w, m + "down_proj", gelu_tanh(clippable(w, m + "gate_proj", h)) * clippable(w, m + "up_proj", h))
        x = x + rms_norm(h, w[l + "post_feedforward_layernorm.weight"], eps)
    x = np.where(padding[:, None], 0.0, x).astype(F32)
    pooled, mask = pool(x, positions, length, k) if x.shape[0] != length else (x, ~padding)
    pooled = (pooled * F32(c["hidden_size"] ** 0.5)).astype(F32)
    soft = pooled[mask]
    soft = ((soft - w[p + "std_bias"]) * w[p + "std_scale"]).astype(F32)
    normed = rms_norm(soft, None, eps)
    emb = (normed.astype(np.float64) @ w["embed_vision.embedding_projection.weight"].T.astype(np.float64)).astype(F32)
    return soft, emb


def make_weights(rng, c):
    h, inter = c["hidden_size"], c["intermediate_size"]
    heads, kv, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    row = 3 * c["patch_size"] ** 2
    w = {}
    p = "vision_tower."
    w[p + "patch_embedder.input_proj.weight"] = rng.normal(0, 0.3, (h, row))
    w[p + "patch_embedder.position_embedding_table"] = rng.normal(0, 0.5, (2, c["position_embedding_size"], h))
    linears = {"self_attn.q_proj": (heads * d, h), "self_attn.k_proj": (kv * d, h), "self_attn.v_proj": (kv * d, h),
               "self_attn.o_proj": (h, heads * d), "mlp.gate_proj": (inter, h), "mlp.up_proj": (inter, h),
               "mlp.down_proj": (h, inter)}
    for i in range(c["num_hidden_layers"]):
        l = f"{p}encoder.layers.{i}."
        for norm in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"]:
            w[l + norm + ".weight"] = 1 + rng.normal(0, 0.3, h)
        w[l + "self_attn.q_norm.weight"] = 1 + rng.normal(0, 0.3, d)
        w[l + "self_attn.k_norm.weight"] = 1 + rng.normal(0, 0.3, d)
        for j, (name, shape) in enumerate(linears.items()):
            w[l + name + ".linear.weight"] = rng.normal(0, 0.4 / np.sqrt(shape[1]) * 2, shape)
            # Bounds tight enough to bite on some values; one side of some layers left infinite.
            w[l + name + ".input_min"] = np.array(-np.inf if j % 3 == 0 else -rng.uniform(0.8, 1.5))
            w[l + name + ".input_max"] = np.array(rng.uniform(0.8, 1.5))
            w[l + name + ".output_min"] = np.array(-rng.uniform(0.6, 1.2))
            w[l + name + ".output_max"] = np.array(np.inf if j % 2 == 0 else rng.uniform(0.6, 1.2))
    w[p + "std_bias"] = rng.normal(0, 0.5, h)
    w[p + "std_scale"] = rng.uniform(0.5, 2.0, h)
    w["embed_vision.embedding_projection.weight"] = rng.normal(0, 0.2, (TEXT_HIDDEN, h))
    return {k: np.asarray(v, dtype=F32) for k, v in w.items()}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def image_case(rng, width, height, budget, shuffle=False):
    """Processor-like input: patches row-major with (x, y), padded to `budget` rows with zeros and (-1, -1)."""
    row = 3 * CONFIG["patch_size"] ** 2
    n = width * height
    pixels = np.zeros((budget, row), dtype=F32)
    pixels[:n] = rng.integers(0, 256, (n, row)) / F32(255)
    positions = np.full((budget, 2), -1, dtype=np.int64)
    ys, xs = np.divmod(np.arange(n), width)
    positions[:n, 0], positions[:n, 1] = xs, ys
    if shuffle:
        order = rng.permutation(budget)
        pixels, positions = pixels[order], positions[order]
    return pixels, positions


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(SEED)
    weights = make_weights(rng, CONFIG)
    snapshot = os.path.join(out, "numpy_gemma4_vision")
    expected = os.path.join(out, "numpy_gemma4_vision_expected")
    os.makedirs(snapshot, exist_ok=True)
    os.makedirs(expected, exist_ok=True)
    config = {"architectures": ["Gemma4ForConditionalGeneration"], "model_type": "gemma4",
              "text_config": {"hidden_size": TEXT_HIDDEN, "model_type": "gemma4_text"}, "vision_config": CONFIG}
    with open(os.path.join(snapshot, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    write_safetensors(os.path.join(snapshot, "model.safetensors"), weights)

    def save(name, array, dtype):
        np.ascontiguousarray(array, dtype=dtype).tofile(os.path.join(expected, name))
        return name

    cases = []
    # (width, height, budget in patches, shuffled rows): landscape with padding, tall with shuffled padded rows,
    # an exact fit without padding.
    for k, (wp, hp, budget, shuffle) in enumerate([(9, 6, 81, False), (3, 12, 45, True), (6, 3, 18, False)]):
        pixels, positions = image_case(rng, wp, hp, budget, shuffle)
        soft, emb = tower(weights, pixels, positions, CONFIG)
        cases.append({"name": f"image_{wp}x{hp}_in_{budget}", "patches": budget, "soft_tokens": int(soft.shape[0]),
                      "pixels": save(f"case_{k}_pixels.f32", pixels, "<f4"),
                      "positions": save(f"case_{k}_positions.i64", positions, "<i8"),
                      "soft": save(f"case_{k}_soft.f32", soft, "<f4"),
                      "embeddings": save(f"case_{k}_embeddings.f32", emb, "<f4")})

    # RoPE alone: 5 tokens, 3 heads, head_dim 16, θ 100, positions beyond the first few to exercise every frequency.
    rope_x = rng.normal(0, 1, (5, 3, 16)).astype(F32)
    rope_pos = np.array([[0, 0], [1, 0], [0, 1], [7, 3], [12, 31]], dtype=np.int64)
    cos, sin = rope_cos_sin(rope_pos, 16, 100.0)
    rope_out = apply_multidimensional_rope(rope_x, cos, sin)

    # Pooler alone: a 6×6 grid in a budget of 45 patches, rows shuffled, k = 3.
    pool_hidden = rng.normal(0, 1, (45, 8)).astype(F32)
    _, pool_pos = image_case(rng, 6, 6, 45, shuffle=True)
    pool_hidden[(pool_pos == -1).all(axis=-1)] = 0
    pooled, pool_mask = pool(pool_hidden, pool_pos, 45 // 9, 3)

    summary = {
        "config": "numpy_gemma4_vision", "text_hidden_size": TEXT_HIDDEN, "cases": cases,
        "rope": {"tokens": 5, "heads": 3, "head_dim": 16, "theta": 100.0, "positions": rope_pos.tolist(),
                 "input": save("rope_input.f32", rope_x, "<f4"), "output": save("rope_output.f32", rope_out, "<f4")},
        "pooler": {"patches": 45, "hidden": 8, "kernel": 3, "output_length": 5, "positions": pool_pos.tolist(),
                   "input": save("pool_input.f32", pool_hidden, "<f4"),
                   "output": save("pool_output.f32", pooled[pool_mask], "<f4"), "tokens": int(pool_mask.sum())},
    }
    with open(os.path.join(expected, "cases.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
