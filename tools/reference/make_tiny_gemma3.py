"""Builds a tiny random-weight Gemma 3 vision-language snapshot and the reference outputs loom's golden tests compare
against, computed by Hugging Face transformers in float32.

Run on a machine with torch and transformers (no network needed):
    python3 tools/reference/make_tiny_gemma3.py OUT_DIR [--loom PATH_TO_LOOM_BINARY]
Writes OUT_DIR/tiny_gemma3_vlm/ (config.json, model.safetensors in bf16, generation_config.json) and
OUT_DIR/tiny_gemma3_vlm_expected/ (cases.json: prompt ids, token types, greedy continuation, top-5 logprobs per step;
case_<k>_logits.f32: float32 logits [prompt_len, vocab] little-endian; case_<k>_pixels.f32: pixel values).
With --loom, also OUT_DIR/tiny_gemma3_vlm_{affine4,affine8,mxfp4,mxfp8,nvfp4}/ (copies made by `loom quantize`) and
their _expected/ folders: transformers' outputs on each copy's weights dequantized by tools/reference/mlx_dequant.py.
The prompt ids are synthetic (the tiny vocabulary has no tokenizer): what these fixtures check is the model math,
given ids and pixels; prompt assembly is checked against the real processors elsewhere.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
from transformers import Gemma3Config, Gemma3ForConditionalGeneration

import mlx_dequant

SEED = 1234
VOCAB = 512
BOS, EOS, PAD = 2, 1, 0
START_TURN, END_TURN = 105, 106
BOI, EOI, IMAGE = 500, 501, 502
TOKENS_PER_IMAGE = 4


def build_config():
    return Gemma3Config(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=6,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=6,
            sliding_window_pattern=3,
            rope_theta=1_000_000.0,
            rope_local_base_freq=10_000.0,
            rope_scaling={"rope_type": "linear", "factor": 8.0},
            max_position_embeddings=512,
            rms_norm_eps=1e-6,
            hidden_activation="gelu_pytorch_tanh",
            pad_token_id=PAD,
            bos_token_id=BOS,
            eos_token_id=EOS,
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=56,
            patch_size=14,
            layer_norm_eps=1e-6,
            hidden_act="gelu_pytorch_tanh",
            vision_use_head=False,
        ),
        mm_tokens_per_image=TOKENS_PER_IMAGE,
        boi_token_index=BOI,
        eoi_token_index=EOI,
        image_token_index=IMAGE,
        eos_token_id=[EOS, END_TURN],
        tie_word_embeddings=True,
    )


def randomize(model, embed_std, linear_std):
    """Random weights with enough spread that every op matters (norm weights are zero-initialised in Gemma)."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = 0.3 if ("norm" in name or "layernorm" in name) else linear_std
            if "embed_tokens" in name:
                std = embed_std
            p.copy_(torch.randn(p.shape, generator=g) * std)


def image_block():
    return [BOI] + [IMAGE] * TOKENS_PER_IMAGE + [EOI]


def cases(rng):
    def text(n):
        return [int(t) for t in rng.integers(3, 100, size=n)]

    user, model_turn = [START_TURN, 110], [START_TURN, 111]  # 110 "user", 111 "model" stand-ins
    nl = 108
    return [
        {"name": "text_only", "ids": [BOS] + user + [nl] + text(12) + [END_TURN, nl] + model_turn + [nl], "images": 0},
        {"name": "image_then_text", "ids": [BOS] + user + [nl] + image_block() + text(9) + [END_TURN, nl] + model_turn + [nl],
         "images": 1},
        {"name": "two_images_two_turns",
         "ids": [BOS] + user + [nl] + text(3) + image_block() + text(4) + [END_TURN, nl] + model_turn + [nl] + text(5)
         + [END_TURN, nl] + user + [nl] + image_block() + text(6) + [END_TURN, nl] + model_turn + [nl], "images": 2},
        {"name": "long_text_sliding", "ids": [BOS] + user + [nl] + text(40) + [END_TURN, nl] + model_turn + [nl],
         "images": 0},
    ]


def diverse(model, config):
    rng = np.random.default_rng(SEED)
    size = config.vision_config.image_size
    for case in cases(rng):
        ids = torch.tensor([case["ids"]])
        kwargs = dict(input_ids=ids, token_type_ids=(ids == IMAGE).long())
        if case["images"]:
            kwargs["pixel_values"] = torch.from_numpy(
                rng.uniform(-1, 1, size=(case["images"], 3, size, size)).astype(np.float32))
        with torch.no_grad():
            out = model.generate(**kwargs, max_new_tokens=16, do_sample=False, eos_token_id=None)
        if len(set(out[0, ids.shape[1]:].tolist())) < 5:
            return False
    return True


def write_expected(model, config, expected_dir):
    """Per case: logits at every prompt position, a 16-token greedy continuation with top-5 logprobs, the pixels."""
    os.makedirs(expected_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    size = config.vision_config.image_size
    summary = []
    for k, case in enumerate(cases(rng)):
        ids = torch.tensor([case["ids"]])
        token_types = (ids == IMAGE).long()
        kwargs = dict(input_ids=ids, token_type_ids=token_types)
        if case["images"]:
            pixels = torch.from_numpy(rng.uniform(-1, 1, size=(case["images"], 3, size, size)).astype(np.float32))
            kwargs["pixel_values"] = pixels
            pixels.numpy().astype("<f4").tofile(os.path.join(expected_dir, f"case_{k}_pixels.f32"))
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
        summary.append({"name": case["name"], "prompt_ids": case["ids"], "token_type_ids": token_types[0].tolist(),
                        "num_images": case["images"], "completion_ids": new_ids, "steps": steps,
                        "logits_file": f"case_{k}_logits.f32",
                        "pixels_file": f"case_{k}_pixels.f32" if case["images"] else None})
    with open(os.path.join(expected_dir, "cases.json"), "w") as f:
        json.dump({"vocab_size": VOCAB, "image_size": size, "cases": summary}, f, indent=1)


# loom quantize flags per copy; every mode loom writes.
QUANTIZED_COPIES = [("affine4", ["--mode", "affine", "--bits", "4"]), ("affine8", ["--mode", "affine", "--bits", "8"]),
                    ("mxfp4", ["--mode", "mxfp4"]), ("mxfp8", ["--mode", "mxfp8"]), ("nvfp4", ["--mode", "nvfp4"])]


def quantized_reference(out, loom, suffix, flags):
    """A copy of the snapshot made by `loom quantize`, and transformers' outputs on its weights dequantized by an
    independent numpy decoder (mlx_dequant.py): loom running on the quantized storage must match them."""
    source = os.path.join(out, "tiny_gemma3_vlm")
    target = os.path.join(out, f"tiny_gemma3_vlm_{suffix}")
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([loom, "quantize", "--model", source, "--out", target] + flags, check=True)
    with open(os.path.join(target, "config.json")) as f:
        q = json.load(f)["quantization"]
    tensors = {}
    for file in sorted(os.listdir(target)):
        if file.endswith(".safetensors"):
            tensors.update(mlx_dequant.read_safetensors(os.path.join(target, file)))
    model = Gemma3ForConditionalGeneration.from_pretrained(source, torch_dtype=torch.float32).eval()
    state = model.state_dict()
    replaced = 0
    for name in [n for n in tensors if n.endswith(".scales")]:
        module = name[: -len(".scales")]
        w = mlx_dequant.dequantize(tensors, module, q.get("mode", "affine"), q["bits"], q["group_size"])
        tail = module.split("language_model.")[-1].removeprefix("model.")
        keys = [k for k in state if k.endswith(tail + ".weight") and "language_model" in k]
        assert len(keys) == 1, (module, keys)
        state[keys[0]].copy_(torch.from_numpy(w.astype(np.float32)))
        replaced += 1
    model.load_state_dict(state)  # a tied lm_head follows the embedding
    print(suffix, "dequantized", replaced, "matrices")
    write_expected(model, model.config, target + "_expected")


def main():
    out = sys.argv[1]
    torch.manual_seed(SEED)
    config = build_config()
    model = Gemma3ForConditionalGeneration(config).eval()
    # A random model tends to repeat its last input token; pick the first weight scale whose greedy continuations
    # vary, so that a greedy-token comparison can catch real mistakes.
    for embed_std, linear_std in [(0.02, 0.2), (0.03, 0.3), (0.05, 0.25), (0.01, 0.3), (0.1, 0.3)]:
        randomize(model, embed_std, linear_std)
        if diverse(model, config):
            break
    print("weight scales", embed_std, linear_std)
    snapshot = os.path.join(out, "tiny_gemma3_vlm")
    # The snapshot is stored in bf16 like published ones; the reference runs in float32 on the same rounded weights.
    model.to(torch.bfloat16).save_pretrained(snapshot, safe_serialization=True)
    model = Gemma3ForConditionalGeneration.from_pretrained(snapshot, torch_dtype=torch.float32).eval()

    write_expected(model, config, os.path.join(out, "tiny_gemma3_vlm_expected"))
    if len(sys.argv) > 3 and sys.argv[2] == "--loom":
        for suffix, flags in QUANTIZED_COPIES:
            quantized_reference(out, sys.argv[3], suffix, flags)


if __name__ == "__main__":
    main()
