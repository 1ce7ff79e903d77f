"""Builds tiny random-weight Qwen3 snapshots and the reference outputs loom's golden tests compare against, computed by
Hugging Face transformers (5.17) in float32 on CPU.

Run on a machine with torch and transformers (no network needed), from the repository root:
    python3 tools/reference/make_tiny_qwen3vl.py OUT_DIR [--loom PATH_TO_LOOM_BINARY]
(OUT_DIR is normally tests/golden/models). Writes, each snapshot stored in bf16 and the reference run in float32 on
the same rounded weights:
  tiny_qwen3vl/        Qwen3VLForConditionalGeneration: text hidden 64, 4 layers, M-RoPE section [2, 3, 3]; vision
                       depth 2, patch 8, merge 2, DeepStack after vision blocks 0 and 1 (2 features)
  tiny_qwen3vl_moe/    Qwen3VLMoeForConditionalGeneration: the same with 4 experts top-2 (layer 0 dense)
  tiny_qwen3/          Qwen3ForCausalLM (text only, plain RoPE)
  <name>_expected/     cases.json: per case prompt ids, token types, image_grid_thw, the M-RoPE positions [3, n] and
                       rope_delta of get_rope_index, the 16-token greedy continuation and top-5 logprobs per step;
                       case_K_logits.f32 (float32 [prompt_len, vocab]), case_K_pixels.f32 (float32 pixel rows
                       [patches, 3·2·8·8] as the processor lays them out), case_K_features.f32 (the vision tower's
                       output per image token: merger output then each DeepStack feature, [tokens, 64·3]).
With --loom: the loom binary quantizes tiny_qwen3vl (`loom quantize --mode affine` → tiny_qwen3vl_affine4,
`--mode mxfp4` → tiny_qwen3vl_mxfp4); this script dequantizes those files itself (numpy, the documented MLX formulas:
affine w = scale·q + bias per group; mxfp4 w = e2m1(code)·2^(e8m0 − 127)) and writes <name>_expected/ with the
reference outputs of transformers running on the dequantized weights. loom must match them running on the quantized
storage, so the check covers loom's quantized kernels and loaders, not the quantizer's rounding choices.

Inputs are synthetic, built as Qwen3VLProcessor would lay them out: the tiny vocabulary has no tokenizer, so the ids
are random text ids with <|vision_start|> <|image_pad|>×(h·w/4) <|vision_end|> blocks (the image in several turns,
images of different grid sizes), mm_token_type_ids marks the pads, pixel rows are random values in [-1, 1] (what
normalisation with mean = std = 0.5 produces) in [grid_t·grid_h·grid_w, C·T·p·p] order, and image_grid_thw is
(1, h, w). What these fixtures check is the model math given ids and pixels; preprocessing and prompt assembly are
checked against the real processor elsewhere.
"""

import argparse
import json
import os
import shutil
import subprocess

import numpy as np
import torch
from transformers import (Qwen3Config, Qwen3ForCausalLM, Qwen3VLConfig, Qwen3VLForConditionalGeneration,
                          Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration)

SEED = 4321
VOCAB = 512
IMAGE, VIDEO, VISION_START, VISION_END = 500, 501, 502, 503
IM_START, IM_END, NL = 504, 505, 506
PATCH, TEMPORAL, MERGE = 8, 2, 2
STEPS = 16

TEXT = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, hidden_act="silu", max_position_embeddings=1024, rms_norm_eps=1e-6,
            tie_word_embeddings=True, eos_token_id=IM_END)
MROPE = {"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=PATCH,
              temporal_patch_size=TEMPORAL, spatial_merge_size=MERGE, out_hidden_size=64, num_position_embeddings=16,
              deepstack_visual_indexes=[0, 1], hidden_act="gelu_pytorch_tanh")
TOP = dict(image_token_id=IMAGE, video_token_id=VIDEO, vision_start_token_id=VISION_START,
           vision_end_token_id=VISION_END, tie_word_embeddings=True)


def vl_config():
    return Qwen3VLConfig(text_config=dict(TEXT, rope_parameters=MROPE), vision_config=VISION, **TOP)


def vl_moe_config():
    text = dict(TEXT, rope_parameters=MROPE, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48,
                decoder_sparse_step=1, mlp_only_layers=[0])
    return Qwen3VLMoeConfig(text_config=text, vision_config=VISION, **TOP)


def text_config():
    return Qwen3Config(**dict(TEXT, rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}))


def randomize(model, std):
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith("mlp.gate.weight"):  # routers: decisive choices
                p.copy_(torch.randn(p.shape, generator=g))
            elif "bias" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if "embed_tokens" in name else std))


def image_block(grid):
    return [VISION_START] + [IMAGE] * (grid[0] * grid[1] * grid[2] // (MERGE * MERGE)) + [VISION_END]


def cases(rng, vision):
    def text(n):
        return [int(t) for t in rng.integers(10, 480, size=n)]

    user, assistant = [IM_START, 507, NL], [IM_START, 508, NL]
    out = [{"name": "text_only", "ids": user + text(12) + [IM_END, NL] + assistant, "grids": []},
           {"name": "long_text", "ids": user + text(60) + [IM_END, NL] + assistant, "grids": []}]
    if vision:
        g1, g2, g3 = [1, 4, 6], [1, 6, 4], [1, 2, 2]
        out += [
            {"name": "one_image", "ids": user + image_block(g1) + text(6) + [IM_END, NL] + assistant, "grids": [g1]},
            {"name": "three_images_two_turns",
             "ids": user + text(3) + image_block(g2) + text(4) + image_block(g3) + [IM_END, NL] + assistant + text(5)
             + [IM_END, NL] + user + image_block([1, 4, 4]) + text(6) + [IM_END, NL] + assistant,
             "grids": [g2, g3, [1, 4, 4]]},
        ]
    return out


def inputs_for(case, rng, vision):
    ids = torch.tensor([case["ids"]])
    kwargs = dict(input_ids=ids)
    if vision:
        kwargs["mm_token_type_ids"] = (ids == IMAGE).int()
    if case["grids"]:
        rows = sum(t * h * w for t, h, w in case["grids"])
        kwargs["pixel_values"] = torch.from_numpy(
            rng.uniform(-1, 1, size=(rows, 3 * TEMPORAL * PATCH * PATCH)).astype(np.float32))
        kwargs["image_grid_thw"] = torch.tensor(case["grids"])
    return kwargs


def diverse(model, vision):
    rng = np.random.default_rng(SEED)
    for case in cases(rng, vision):
        kwargs = inputs_for(case, rng, vision)
        with torch.no_grad():
            out = model.generate(**kwargs, max_new_tokens=STEPS, do_sample=False, eos_token_id=None)
        if len(set(out[0, len(case["ids"]):].tolist())) < 5:
            return False
    return True


def write_expected(model, expected_dir, vision):
    os.makedirs(expected_dir, exist_ok=True)
    rng = np.random.default_rng(SEED)
    summary = []
    for k, case in enumerate(cases(rng, vision)):
        kwargs = inputs_for(case, rng, vision)
        entry = {"name": case["name"], "prompt_ids": case["ids"], "grids": case["grids"], "num_images": len(case["grids"])}
        with torch.no_grad():
            if vision:
                entry["token_type_ids"] = kwargs["mm_token_type_ids"][0].tolist()
                positions, delta = model.model.get_rope_index(
                    kwargs["input_ids"], mm_token_type_ids=kwargs["mm_token_type_ids"],
                    image_grid_thw=kwargs.get("image_grid_thw"))
                entry["positions"] = positions[:, 0].tolist()
                entry["rope_delta"] = int(delta.reshape(-1)[0])
            if case["grids"]:
                kwargs["pixel_values"].numpy().astype("<f4").tofile(os.path.join(expected_dir, f"case_{k}_pixels.f32"))
                feats = model.model.get_image_features(kwargs["pixel_values"], kwargs["image_grid_thw"], return_dict=True)
                merged = torch.cat(list(feats.pooler_output), dim=0)
                joined = torch.cat([merged] + list(feats.deepstack_features), dim=1).float()
                joined.numpy().astype("<f4").tofile(os.path.join(expected_dir, f"case_{k}_features.f32"))
                entry["pixels_file"] = f"case_{k}_pixels.f32"
                entry["features_file"] = f"case_{k}_features.f32"
            logits = model(**kwargs).logits[0].float()
            logits.numpy().astype("<f4").tofile(os.path.join(expected_dir, f"case_{k}_logits.f32"))
            gen = model.generate(**kwargs, max_new_tokens=STEPS, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, eos_token_id=None)
        new_ids = gen.sequences[0, len(case["ids"]):].tolist()
        steps = []
        for step, scores in enumerate(gen.scores):
            logprobs = torch.log_softmax(scores[0].float(), dim=-1)
            top = torch.topk(logprobs, 5)
            steps.append({"token_id": new_ids[step], "top": [[int(i), float(v)] for v, i in zip(top.values, top.indices)]})
        entry.update(completion_ids=new_ids, steps=steps, logits_file=f"case_{k}_logits.f32")
        summary.append(entry)
    with open(os.path.join(expected_dir, "cases.json"), "w") as f:
        json.dump({"vocab_size": VOCAB, "merge_size": MERGE, "cases": summary}, f, indent=1)


def build(out, name, cls, config, vision):
    torch.manual_seed(SEED)
    model = cls(config).eval()
    # A random model tends to repeat one token; take the first weight scale whose greedy continuations vary.
    for std in (0.2, 0.3, 0.15, 0.4):
        randomize(model, std)
        if diverse(model, vision):
            break
    print(name, "weight std", std)
    snapshot = os.path.join(out, name)
    model.to(torch.bfloat16).save_pretrained(snapshot, safe_serialization=True)
    model = cls.from_pretrained(snapshot, dtype=torch.float32).eval()
    write_expected(model, os.path.join(out, name + "_expected"), vision)
    return snapshot


E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float64)


def read_safetensors(path):
    """name → numpy array; BF16 widened to float32 (numpy has no bfloat16), U32/U8 kept as stored."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        raw = data[info["data_offsets"][0]:info["data_offsets"][1]]
        dtype = info["dtype"]
        if dtype == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype={"F32": "<f4", "F16": "<f2", "U32": "<u4", "U8": "u1", "F8_E8M0": "u1"}[dtype])
        out[name] = a.reshape(info["shape"])
    return out


def unpack(packed, bits, cols):
    """Each row an LSB-first bitstream of `bits`-bit codes in little-endian uint32 words."""
    words = packed.astype(np.uint64)
    per_word = 32 // bits
    j = np.arange(cols)
    return ((words[:, j // per_word] >> (bits * (j % per_word)).astype(np.uint64)) & ((1 << bits) - 1)).astype(np.int64)


def dequantize(tensors, module, mode, bits, group):
    packed = tensors[module + ".weight"]
    cols = packed.shape[1] * 32 // bits
    q = unpack(packed, bits, cols)
    g = np.arange(cols) // group
    scales = tensors[module + ".scales"].astype(np.float64)[:, g]
    if mode == "affine":
        return scales * q + tensors[module + ".biases"].astype(np.float64)[:, g]
    sign = np.where(q & 8, -1.0, 1.0)  # mxfp4: E2M1 codes, E8M0 scales
    return sign * E2M1[q & 7] * np.exp2(scales - 127)


def quantized_copy(out, loom, source, mode, suffix):
    target = os.path.join(out, f"tiny_qwen3vl_{suffix}")
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([loom, "quantize", "--model", source, "--out", target, "--mode", mode], check=True)
    with open(os.path.join(target, "config.json")) as f:
        qconfig = json.load(f)
    q = qconfig.get("quantization", qconfig.get("quantization_config"))
    bits, group = (q.get("bits", 4), q["group_size"])
    tensors = {}
    for file in sorted(os.listdir(target)):
        if file.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(target, file)))
    model = Qwen3VLForConditionalGeneration.from_pretrained(source, dtype=torch.float32).eval()
    state = model.state_dict()
    replaced = 0
    for name in list(tensors):
        if not name.endswith(".scales"):
            continue
        module = name[: -len(".scales")]
        w = torch.from_numpy(dequantize(tensors, module, mode, bits, group).astype(np.float32))
        # Stored names may be Hub-style (language_model.model.layers…) or in-memory (model.language_model.layers…).
        tail = module.split("language_model.")[-1].removeprefix("model.")
        keys = [k for k in state if k.endswith(tail + ".weight") and ("language_model" in k or k.startswith("lm_head"))]
        assert len(keys) == 1, (module, keys)
        state[keys[0]].copy_(w)
        replaced += 1
    print(suffix, "dequantized", replaced, "matrices")
    model.load_state_dict(state)
    write_expected(model, target + "_expected", True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--loom", help="loom binary: also write affine-4 and mxfp4 copies of tiny_qwen3vl")
    args = parser.parse_args()
    torch.set_num_threads(4)
    vl = build(args.out, "tiny_qwen3vl", Qwen3VLForConditionalGeneration, vl_config(), True)
    build(args.out, "tiny_qwen3vl_moe", Qwen3VLMoeForConditionalGeneration, vl_moe_config(), True)
    build(args.out, "tiny_qwen3", Qwen3ForCausalLM, text_config(), False)
    if args.loom:
        quantized_copy(args.out, args.loom, vl, "affine", "affine4")
        quantized_copy(args.out, args.loom, vl, "mxfp4", "mxfp4")


if __name__ == "__main__":
    main()
