#!/usr/bin/env python3
"""A tiny Qwen3-VL-MoE text decoder and its outputs computed by an independent numpy transcription of transformers'
modeling_qwen3_vl_moe (float64), for tests that must run without torch.

Writes (deterministic: fixed seed, fixed tensor order), under OUT_DIR (default tests/golden/models):
  numpy_qwen3vl_moe/           config.json (Qwen3VLMoeForConditionalGeneration; 3 layers, layer 0 dense via
                               mlp_only_layers, 4 experts top-2, 2 DeepStack features) and model.safetensors (float32,
                               transformers' names; fused experts in the checkpoint orientation gate_up_proj
                               [experts, hidden, 2·inter], down_proj [experts, inter, hidden]). No vision tower: the
                               image features are given (as the vision tower would return them).
  numpy_qwen3vl_moe_expected/  expected.json: per case prompt ids, M-RoPE positions [3, n] and rope_delta as
                               get_rope_index computes them, the image spans, decode ids; plus a standalone M-RoPE case
                               and a router case. case_K_features.f32: float32 [image tokens, hidden·(1 + deepstack)]
                               (merger output, then each DeepStack feature); case_K_logits.f32: float32 logits
                               [prompt_len + decode steps, vocab] (prompt rows, then one row per decode step).

Needs only numpy:
    python3 tools/reference/qwen3vl_numpy_reference.py [OUT_DIR]
"""
import json
import os
import struct
import sys

import numpy as np

SEED = 20251
VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 96, 32, 3, 4, 2, 16
INTER, MOE_INTER, EXPERTS, TOP_K, DEEPSTACK = 40, 24, 4, 2, 2
THETA, EPS, MERGE = 5000.0, 1e-6, 2
SECTION = [2, 3, 3]  # t, h, w frequency counts; sum = HEAD_DIM / 2
IMAGE, VISION_START, VISION_END = 90, 91, 92
DECODE_STEPS = 4


# ---------------------------------------------------------------- safetensors writer (independent of loom's)
def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, array in tensors:
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- the model, after transformers
def rms_norm(x, w):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS))


def silu(x):
    return x / (1.0 + np.exp(-x))


def rope_cos_sin(positions, head_dim, theta, section):
    """Qwen3VLTextRotaryEmbedding.forward + recomposition_frequencies: positions [3, n] → cos, sin [n, head_dim]."""
    inv_freq = (1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))).astype(np.float32)
    # The angles in float32 as transformers forms them (inv_freq.float() @ position_ids.float()), cos/sin in float64.
    freqs = (positions[:, :, None].astype(np.float32) * inv_freq[None, None, :]).astype(np.float64)  # [3, n, d/2]
    f = freqs[0].copy()
    for dim, offset in ((1, 1), (2, 2)):
        length = section[dim] * 3
        f[..., offset:length:3] = freqs[dim, ..., offset:length:3]
    emb = np.concatenate([f, f], axis=-1)
    return np.cos(emb), np.sin(emb)


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x, cos, sin):  # x [n, heads, d]
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def route(logits, top_k):
    """Qwen3VLMoeTextTopKRouter: softmax, top-k, renormalise."""
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    idx = np.argsort(-p, axis=-1, kind="stable")[:, :top_k]
    val = np.take_along_axis(p, idx, axis=-1)
    return idx, val / val.sum(axis=-1, keepdims=True)


def moe(x, w):
    idx, val = route(x @ w["gate"].T, TOP_K)
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(TOP_K):
            e = idx[t, j]
            gate_up = x[t] @ w["gate_up_proj"][e]  # checkpoint orientation: [hidden, 2·inter]
            g, u = gate_up[:MOE_INTER], gate_up[MOE_INTER:]
            out[t] += val[t, j] * ((silu(g) * u) @ w["down_proj"][e])
    return out


def attention(x, w, cos, sin):
    n = x.shape[0]
    q = rms_norm((x @ w["q_proj"].T).reshape(n, HEADS, HEAD_DIM), w["q_norm"])
    k = rms_norm((x @ w["k_proj"].T).reshape(n, KV_HEADS, HEAD_DIM), w["k_norm"])
    v = (x @ w["v_proj"].T).reshape(n, KV_HEADS, HEAD_DIM)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    rep = HEADS // KV_HEADS
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) * HEAD_DIM ** -0.5
    scores = scores + np.triu(np.full((n, n), -np.inf), 1)[None]
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    out = np.einsum("hqk,khd->qhd", scores, v).reshape(n, HEADS * HEAD_DIM)
    return out @ w["o_proj"].T


def forward(weights, ids, positions, image_mask, features):
    """Qwen3VLMoeModel.forward with the image features given: logits [n, vocab] (full recompute, no cache)."""
    x = weights["embed"][ids].copy()
    if image_mask.any():
        x[image_mask] = features[:, :HIDDEN]
    cos, sin = rope_cos_sin(positions, HEAD_DIM, THETA, SECTION)
    for i, layer in enumerate(weights["layers"]):
        h = x + attention(rms_norm(x, layer["input_layernorm"]), layer, cos, sin)
        normed = rms_norm(h, layer["post_attention_layernorm"])
        x = h + (moe(normed, layer) if "gate_up_proj" in layer else
                 (silu(normed @ layer["gate_proj"].T) * (normed @ layer["up_proj"].T)) @ layer["down_proj"].T)
        if image_mask.any() and i < DEEPSTACK:  # _deepstack_process after decoder layer i
            x[image_mask] += features[:, (1 + i) * HIDDEN:(2 + i) * HIDDEN]
    return rms_norm(x, weights["norm"]) @ weights["embed"].T  # tied


def rope_index(ids, grids):
    """Qwen3VLModel.get_rope_index for one sequence of images (token type 1 = image)."""
    types = [1 if t == IMAGE else 0 for t in ids]
    pos, current, k, i = [], 0, 0, 0
    while i < len(ids):
        j = i
        while j < len(ids) and types[j] == types[i]:
            j += 1
        if types[i] == 0:
            pos.append(np.arange(j - i)[None].repeat(3, 0) + current)
            current += j - i
        else:
            t, h, w = grids[k][0], grids[k][1] // MERGE, grids[k][2] // MERGE
            tt, hh, ww = np.meshgrid(np.arange(t), np.arange(h) + current, np.arange(w) + current, indexing="ij")
            block = np.stack([tt, hh, ww]).reshape(3, -1)
            block[0] += current
            pos.append(block)
            current += max(grids[k][1], grids[k][2]) // MERGE
            k += 1
        i = j
    positions = np.concatenate(pos, axis=1)
    return positions, int(positions.max() + 1 - len(ids))


# ---------------------------------------------------------------- fixture
def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden",
                                                             "models")
    rng = np.random.default_rng(SEED)

    def rand(*shape, std=0.2):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    weights = {"embed": rand(VOCAB, HIDDEN, std=0.5), "layers": []}
    tensors = [("model.language_model.embed_tokens.weight", weights["embed"])]
    for i in range(LAYERS):
        p = f"model.language_model.layers.{i}."
        layer = {"input_layernorm": 1 + rand(HIDDEN, std=0.1), "post_attention_layernorm": 1 + rand(HIDDEN, std=0.1),
                 "q_proj": rand(HEADS * HEAD_DIM, HIDDEN), "k_proj": rand(KV_HEADS * HEAD_DIM, HIDDEN),
                 "v_proj": rand(KV_HEADS * HEAD_DIM, HIDDEN), "o_proj": rand(HIDDEN, HEADS * HEAD_DIM),
                 "q_norm": 1 + rand(HEAD_DIM, std=0.1), "k_norm": 1 + rand(HEAD_DIM, std=0.1)}
        tensors += [(p + n + ".weight", layer[n]) for n in ("input_layernorm", "post_attention_layernorm")]
        tensors += [(p + "self_attn." + n + ".weight", layer[n])
                    for n in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")]
        if i == 0:  # mlp_only_layers = [0]: a dense MLP of intermediate_size
            layer.update(gate_proj=rand(INTER, HIDDEN), up_proj=rand(INTER, HIDDEN), down_proj=rand(HIDDEN, INTER))
            tensors += [(p + "mlp." + n + ".weight", layer[n]) for n in ("gate_proj", "up_proj", "down_proj")]
        else:
            layer.update(gate=rand(EXPERTS, HIDDEN, std=1.0), gate_up_proj=rand(EXPERTS, HIDDEN, 2 * MOE_INTER),
                         down_proj=rand(EXPERTS, MOE_INTER, HIDDEN))
            tensors += [(p + "mlp.gate.weight", layer["gate"]),
                        (p + "mlp.experts.gate_up_proj", layer["gate_up_proj"]),
                        (p + "mlp.experts.down_proj", layer["down_proj"])]
        weights["layers"].append(layer)
    weights["norm"] = 1 + rand(HIDDEN, std=0.1)
    tensors.append(("model.language_model.norm.weight", weights["norm"]))

    snapshot = os.path.join(out, "numpy_qwen3vl_moe")
    os.makedirs(snapshot, exist_ok=True)
    write_safetensors(os.path.join(snapshot, "model.safetensors"), tensors)
    config = {
        "architectures": ["Qwen3VLMoeForConditionalGeneration"], "model_type": "qwen3_vl_moe",
        "image_token_id": IMAGE, "video_token_id": 93, "vision_start_token_id": VISION_START,
        "vision_end_token_id": VISION_END, "tie_word_embeddings": True,
        "text_config": {"vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": INTER,
                        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
                        "head_dim": HEAD_DIM, "hidden_act": "silu", "max_position_embeddings": 256,
                        "rms_norm_eps": EPS, "num_experts": EXPERTS, "num_experts_per_tok": TOP_K,
                        "moe_intermediate_size": MOE_INTER, "decoder_sparse_step": 1, "mlp_only_layers": [0],
                        "rope_parameters": {"rope_type": "default", "rope_theta": THETA, "mrope_section": SECTION,
                                            "mrope_interleaved": True}, "eos_token_id": 3},
        "vision_config": {"depth": 2, "hidden_size": 16, "out_hidden_size": HIDDEN, "spatial_merge_size": MERGE,
                          "deepstack_visual_indexes": [0, 1]},
    }
    with open(os.path.join(snapshot, "config.json"), "w") as f:
        json.dump(config, f, indent=1)

    expected_dir = os.path.join(out, "numpy_qwen3vl_moe_expected")
    os.makedirs(expected_dir, exist_ok=True)

    def text(n):
        return [int(t) for t in rng.integers(4, 89, size=n)]

    def image(grid):
        return [VISION_START] + [IMAGE] * (grid[0] * grid[1] * grid[2] // (MERGE * MERGE)) + [VISION_END]

    g1, g2 = [1, 4, 6], [1, 6, 4]
    cases = [("text_only", text(14), []),
             ("two_images_two_turns", text(4) + image(g1) + text(5) + image(g2) + text(3), [g1, g2])]
    summary = []
    for k, (name, ids, grids) in enumerate(cases):
        positions, delta = rope_index(ids, grids)
        mask = np.array([t == IMAGE for t in ids])
        features = rand(int(mask.sum()), HIDDEN * (1 + DEEPSTACK), std=0.5)
        features.astype("<f4").tofile(os.path.join(expected_dir, f"case_{k}_features.f32"))
        logits = forward(weights, np.array(ids), positions, mask, features)
        rows, seq, pos, decode = [logits], list(ids), positions, []
        for _ in range(DECODE_STEPS):  # greedy; a decoded token's position is its index + rope_delta on every axis
            nxt = int(np.argmax(rows[-1][-1]))
            decode.append(nxt)
            pos = np.concatenate([pos, np.full((3, 1), len(seq) + delta)], axis=1)
            seq.append(nxt)
            full = forward(weights, np.array(seq), pos, np.array([t == IMAGE for t in seq]), features)
            rows.append(full[-1:])
        np.concatenate(rows[:1] + rows[1:], axis=0).astype("<f4").tofile(
            os.path.join(expected_dir, f"case_{k}_logits.f32"))
        summary.append({"name": name, "prompt_ids": ids, "positions": positions.tolist(), "rope_delta": delta,
                        "grids": grids, "decode_ids": decode, "features_file": f"case_{k}_features.f32",
                        "logits_file": f"case_{k}_logits.f32"})

    # A standalone M-RoPE case on a wider head (section [5, 6, 5] of 16 pairs) and a router case.
    rope_section, rope_dim, rope_theta = [5, 6, 5], 32, 1e6
    rx = rand(5, 3, rope_dim, std=1.0)
    rpos = rng.integers(0, 500, size=(3, 5))
    cos, sin = rope_cos_sin(rpos, rope_dim, rope_theta, rope_section)
    router_logits = rand(6, 8, std=2.0)
    r_idx, r_val = route(router_logits.astype(np.float64), 3)
    p = np.exp(router_logits - router_logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    with open(os.path.join(expected_dir, "expected.json"), "w") as f:
        json.dump({"vocab_size": VOCAB, "hidden_size": HIDDEN, "deepstack": DEEPSTACK, "cases": summary,
                   "rope": {"head_dim": rope_dim, "theta": rope_theta, "section": rope_section,
                            "x": rx.ravel().tolist(), "shape": list(rx.shape), "positions": rpos.tolist(),
                            "expected": apply_rope(rx.astype(np.float64), cos, sin).ravel().tolist()},
                   "router": {"logits": router_logits.tolist(), "top_k": 3, "experts": r_idx.tolist(),
                              "normalized": r_val.tolist(),
                              "raw": np.take_along_axis(p, r_idx, axis=-1).tolist()}}, f)


if __name__ == "__main__":
    main()
