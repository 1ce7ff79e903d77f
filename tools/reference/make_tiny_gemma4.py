"""Builds two tiny random-weight Gemma 4 vision-language snapshots and the reference outputs loom's golden tests compare
against, computed by Hugging Face transformers (5.17) in float32.

Run on a machine with torch and transformers (no network needed, well under two minutes on a CPU):
    python3 tools/reference/make_tiny_gemma4.py OUT_DIR
then copy OUT_DIR/* into tests/golden/models/. Writes, for NAME in tiny_gemma4_e2b and tiny_gemma4_moe:
  OUT_DIR/NAME/            config.json, generation_config.json, model.safetensors (bf16, like published snapshots)
  OUT_DIR/NAME_expected/   cases.json (per case: prompt ids, image runs, greedy continuation, top-5 logprobs per step),
                           case_<k>_logits.f32 (float32 [prompt_len, vocab], little-endian),
                           case_<k>_image_<i>_pixels.f32 (float32 [max_patches, 3·patch²]) and
                           case_<k>_image_<i>_positions.i64 (int64 [max_patches, 2], (x, y), −1 padding):
                           exactly what the vision tower got for image i.
The snapshots together exercise every Gemma 4 text feature:
  tiny_gemma4_e2b (E2B/E4B-like): per-layer embeddings, KV sharing over the last 4 of 8 layers (a sliding and a full
    source), double-wide MLP on the shared layers, sliding + full layers with different head dims, proportional RoPE
    with partial rotation, v_norm, layer_scalar, final logit softcap, clipped-linear vision tower; causal images.
  tiny_gemma4_moe (26B/31B-like): attention_k_eq_v with its own full-layer KV head count, MoE block next to the dense
    MLP, bidirectional attention within image runs (on sliding layers, window 6 < the longest image), standardize.
The prompt ids are synthetic (the tiny vocabulary has no tokenizer): these fixtures check the model math given ids and
pixels; prompt assembly is checked against the real processors elsewhere.
"""

import json
import os
import sys

import numpy as np
import torch
from transformers import Gemma4Config, Gemma4ForConditionalGeneration

SEED = 4321
VOCAB = 512
PAD, EOS, BOS = 0, 1, 2
START_TURN, END_TURN = 105, 106
USER, MODEL, NL = 110, 111, 108
BOI, EOI, IMAGE, VIDEO, AUDIO, BOA, EOA = 500, 501, 502, 503, 504, 505, 506
STOP_IDS = [EOS, END_TURN, 50]
PATCH = 16
POOL = 3
MAX_SOFT_TOKENS = 8  # the processor's budget: max_patches = 8 · 9 = 72
MAX_PATCHES = MAX_SOFT_TOKENS * POOL * POOL


def vision_config(standardize):
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, head_dim=16, hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6,
                pooling_kernel_size=POOL, patch_size=PATCH, position_embedding_size=64,
                use_clipped_linears=True, standardize=standardize)


def top_level(text, vision):
    return Gemma4Config(text_config=text, vision_config=vision, audio_config=None, boi_token_id=BOI,
                        eoi_token_id=EOI, image_token_id=IMAGE, video_token_id=VIDEO, audio_token_id=AUDIO,
                        boa_token_id=BOA, eoa_token_index=EOA, eos_token_id=STOP_IDS, tie_word_embeddings=True)


def common_text():
    return dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_attention_heads=4, head_dim=16,
                global_head_dim=32, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=512,
                rms_norm_eps=1e-6, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, tie_word_embeddings=True,
                final_logit_softcapping=10.0,
                rope_parameters={
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                    "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25,
                                       "rope_theta": 1_000_000.0}})


def e2b_config():
    s, f = "sliding_attention", "full_attention"
    text = common_text()
    text.update(num_hidden_layers=8, num_key_value_heads=1, intermediate_size=64,
                layer_types=[s, s, f, s, s, s, s, f], sliding_window=8,
                hidden_size_per_layer_input=16, vocab_size_per_layer_input=VOCAB, num_kv_shared_layers=4,
                use_double_wide_mlp=True, attention_k_eq_v=False, enable_moe_block=False,
                use_bidirectional_attention=None)
    return top_level(text, vision_config(False))


def moe_config():
    s, f = "sliding_attention", "full_attention"
    text = common_text()
    text.update(num_hidden_layers=5, num_key_value_heads=2, num_global_key_value_heads=1,
                layer_types=[s, s, f, s, f], sliding_window=6, hidden_size_per_layer_input=0,
                num_kv_shared_layers=0, use_double_wide_mlp=False, attention_k_eq_v=True, enable_moe_block=True,
                num_experts=4, top_k_experts=2, moe_intermediate_size=32, use_bidirectional_attention="vision")
    return top_level(text, vision_config(True))


def randomize(model, embed_std, linear_std):
    """Random weights with enough spread that every op matters. Gemma 4 norms multiply by w (initialised to 1), so
    norm weights and other multiplicative scales are drawn around 1; layer_scalar, the vision clip bounds and the
    standardize buffers are buffers and are set too."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("router.scale") or name.endswith("per_expert_scale"):
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.3)
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * embed_std)
            elif "position_embedding_table" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * linear_std)
        for name, b in model.named_buffers():
            if name.endswith("layer_scalar"):
                b.copy_(0.6 + torch.rand(b.shape, generator=g) * 0.8)
            elif name.endswith("input_min") or name.endswith("output_min"):
                b.fill_(-float(1.0 + 2.0 * torch.rand(1, generator=g)))
            elif name.endswith("input_max") or name.endswith("output_max"):
                b.fill_(float(1.0 + 2.0 * torch.rand(1, generator=g)))
            elif name.endswith("std_bias"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.5)
            elif name.endswith("std_scale"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


def image_input(rng, grid_w, grid_h):
    """One image as the processor hands it over: patches row-major over (y, x), values in [0, 1], positions (x, y),
    padded with zeros and (−1, −1) to MAX_PATCHES."""
    n = grid_w * grid_h
    pixels = np.zeros((MAX_PATCHES, 3 * PATCH * PATCH), np.float32)
    pixels[:n] = rng.uniform(0, 1, size=(n, 3 * PATCH * PATCH)).astype(np.float32)
    positions = np.full((MAX_PATCHES, 2), -1, np.int64)
    ys, xs = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    positions[:n, 0] = xs.reshape(-1)
    positions[:n, 1] = ys.reshape(-1)
    return pixels, positions, n // (POOL * POOL)


def cases(rng):
    """Each case: prompt ids and the patch grids of its images in order."""
    def text(n):
        return [int(t) for t in rng.integers(3, 100, size=n)]

    def block(tokens):
        return [BOI] + [IMAGE] * tokens + [EOI]

    user, model_turn = [START_TURN, USER, NL], [START_TURN, MODEL, NL]
    end = [END_TURN, NL]
    grids = {"small": (6, 6), "wide": (9, 6), "tall": (3, 9), "full": (12, 6)}  # 4, 6, 3, 8 soft tokens
    tokens = {k: (w * h) // (POOL * POOL) for k, (w, h) in grids.items()}
    return [
        {"name": "text_only", "ids": [BOS] + user + text(12) + end + model_turn, "grids": []},
        {"name": "image_in_first_turn",
         "ids": [BOS] + user + [NL] + block(tokens["wide"]) + [NL] + text(5) + end + model_turn + text(4) + end
         + user + text(6) + end + model_turn,
         "grids": [grids["wide"]]},
        {"name": "image_in_last_turn",
         "ids": [BOS] + user + text(5) + end + model_turn + text(4) + end + user + text(2) + [NL]
         + block(tokens["full"]) + [NL] + text(3) + end + model_turn,
         "grids": [grids["full"]]},
        {"name": "three_images_one_message",
         "ids": [BOS] + user + text(2) + block(tokens["small"]) + text(3) + block(tokens["tall"]) + [NL]
         + block(tokens["full"]) + text(4) + end + model_turn,
         "grids": [grids["small"], grids["tall"], grids["full"]]},
        {"name": "long_text_sliding", "ids": [BOS] + user + text(40) + end + model_turn, "grids": []},
    ]


def model_inputs(case, rng):
    ids = torch.tensor([case["ids"]])
    kwargs = dict(input_ids=ids, mm_token_type_ids=(ids == IMAGE).long())
    images = [image_input(rng, w, h) for (w, h) in case["grids"]]
    if images:
        kwargs["pixel_values"] = torch.from_numpy(np.stack([p for p, _, _ in images]))
        kwargs["image_position_ids"] = torch.from_numpy(np.stack([q for _, q, _ in images]))
    return ids, kwargs, images


def diversity(model):
    """The fewest distinct tokens any case's greedy continuation has."""
    rng = np.random.default_rng(SEED)
    fewest = 16
    for case in cases(rng):
        ids, kwargs, _ = model_inputs(case, rng)
        with torch.no_grad():
            out = model.generate(**kwargs, max_new_tokens=16, do_sample=False, eos_token_id=None)
        fewest = min(fewest, len(set(out[0, ids.shape[1]:].tolist())))
    return fewest


def build(out, name, config):
    torch.manual_seed(SEED)
    model = Gemma4ForConditionalGeneration(config).eval()
    # A random model tends to repeat its last input token; pick the first weight scale whose greedy continuations
    # vary, so that a greedy-token comparison can catch real mistakes.
    best = None
    for embed_std, linear_std in [(0.5, 0.2), (1.0, 0.25), (0.3, 0.3), (1.0, 0.15), (2.0, 0.3), (1.0, 0.5),
                                  (3.0, 0.4)]:
        randomize(model, embed_std, linear_std)
        score = diversity(model)
        if best is None or score > best[0]:
            best = (score, embed_std, linear_std)
        if score >= 5:
            break
    _, embed_std, linear_std = best
    randomize(model, embed_std, linear_std)
    print(name, "weight scales", embed_std, linear_std, "fewest distinct greedy tokens", best[0])
    snapshot = os.path.join(out, name)
    model.generation_config.eos_token_id = STOP_IDS
    # The snapshot is stored in bf16 like published ones; the reference runs in float32 on the same rounded weights.
    model.to(torch.bfloat16).save_pretrained(snapshot, safe_serialization=True)
    size = os.path.getsize(os.path.join(snapshot, "model.safetensors"))
    assert size < 1_000_000, f"{name} is {size} bytes"
    model = Gemma4ForConditionalGeneration.from_pretrained(snapshot, dtype=torch.float32).eval()

    expected_dir = os.path.join(out, name + "_expected")
    os.makedirs(expected_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    summary = []
    for k, case in enumerate(cases(rng)):
        ids, kwargs, images = model_inputs(case, rng)
        image_files = []
        for i, (pixels, positions, soft_tokens) in enumerate(images):
            pf, qf = f"case_{k}_image_{i}_pixels.f32", f"case_{k}_image_{i}_positions.i64"
            pixels.astype("<f4").tofile(os.path.join(expected_dir, pf))
            positions.astype("<i8").tofile(os.path.join(expected_dir, qf))
            image_files.append({"pixels_file": pf, "positions_file": qf, "patches": MAX_PATCHES,
                                "soft_tokens": soft_tokens})
        with torch.no_grad():
            logits = model(**kwargs).logits[0].float()
            logits.numpy().astype("<f4").tofile(os.path.join(expected_dir, f"case_{k}_logits.f32"))
            gen = model.generate(**kwargs, max_new_tokens=16, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, eos_token_id=None)
        new_ids = gen.sequences[0, ids.shape[1]:].tolist()
        steps = []
        for step, scores in enumerate(gen.scores):
            logprobs = torch.log_softmax(scores[0].float(), dim=-1)
            top = torch.topk(logprobs, 5)
            steps.append({"token_id": new_ids[step], "logprob": float(logprobs[new_ids[step]]),
                          "top": [[int(i), float(v)] for v, i in zip(top.values, top.indices)]})
        summary.append({"name": case["name"], "prompt_ids": case["ids"],
                        "image_token_mask": (ids[0] == IMAGE).long().tolist(), "images": image_files,
                        "completion_ids": new_ids, "steps": steps, "logits_file": f"case_{k}_logits.f32"})
    with open(os.path.join(expected_dir, "cases.json"), "w") as f:
        json.dump({"vocab_size": VOCAB, "patch_dim": 3 * PATCH * PATCH, "cases": summary}, f, indent=1)


def main():
    out = sys.argv[1]
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    build(out, "tiny_gemma4_e2b", e2b_config())
    build(out, "tiny_gemma4_moe", moe_config())


if __name__ == "__main__":
    main()
