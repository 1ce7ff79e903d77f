"""Writes a small Gemma 4 MoE example and its expected output, computed in float64 with numpy by transformers'
formulas (Gemma4TextRouter + Gemma4TextExperts, modeling_gemma4.py):

    r = x / sqrt(mean(x²) + eps) · scale · hidden^-0.5;  p = softmax(r · projᵀ)
    top-k of p (descending), w = p_topk / Σ p_topk · per_expert_scale[expert]
    y = x / sqrt(mean(y²) + eps) · pre_feedforward_layernorm_2
    out = Σ_k w_k · down_e(gelu_tanh(gate_e(y)) · up_e(y)),  gate/up = the two halves of gate_up_proj[e]

Run: /usr/bin/python3 tools/reference/gemma4_moe_reference.py tests/golden/models/gemma4_moe_reference.json
"""

import json
import sys

import numpy as np

TOKENS, HIDDEN, EXPERTS, TOP_K, INTER, EPS = 5, 8, 4, 2, 6, 1e-6


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def rms(x):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS)


def main():
    rng = np.random.default_rng(7)
    f32 = lambda a: a.astype(np.float32)
    x = f32(rng.normal(0, 1.5, (TOKENS, HIDDEN)))
    proj = f32(rng.normal(0, 1.0, (EXPERTS, HIDDEN)))
    scale = f32(1 + 0.3 * rng.normal(size=HIDDEN))
    per_expert = f32(1 + 0.3 * rng.normal(size=EXPERTS))
    pre_norm = f32(1 + 0.3 * rng.normal(size=HIDDEN))
    gate_up = f32(rng.normal(0, 0.4, (EXPERTS, 2 * INTER, HIDDEN)))
    down = f32(rng.normal(0, 0.4, (EXPERTS, HIDDEN, INTER)))

    xd = x.astype(np.float64)
    r = rms(xd) * scale * HIDDEN ** -0.5
    logits = r @ proj.astype(np.float64).T
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    order = np.argsort(-p, axis=-1, kind="stable")[:, :TOP_K]
    top_p = np.take_along_axis(p, order, -1)
    weights = top_p / top_p.sum(-1, keepdims=True) * per_expert.astype(np.float64)[order]
    y = rms(xd) * pre_norm
    out = np.zeros((TOKENS, HIDDEN))
    for t in range(TOKENS):
        for k in range(TOP_K):
            e = order[t, k]
            h = gate_up[e].astype(np.float64) @ y[t]
            act = gelu_tanh(h[:INTER]) * h[INTER:]
            out[t] += weights[t, k] * (down[e].astype(np.float64) @ act)

    data = {"tokens": TOKENS, "hidden": HIDDEN, "experts": EXPERTS, "top_k": TOP_K, "intermediate": INTER, "eps": EPS,
            "x": x.ravel().tolist(), "router_proj": proj.ravel().tolist(), "router_scale": scale.tolist(),
            "per_expert_scale": per_expert.tolist(), "pre_feedforward_norm_2": pre_norm.tolist(),
            "gate_up_proj": gate_up.ravel().tolist(), "down_proj": down.ravel().tolist(),
            "probs": p.ravel().tolist(), "expected_experts": order.ravel().tolist(),
            "expected_weights": weights.ravel().tolist(), "expected_out": out.ravel().tolist()}
    with open(sys.argv[1], "w") as f:
        json.dump(data, f)


if __name__ == "__main__":
    main()
