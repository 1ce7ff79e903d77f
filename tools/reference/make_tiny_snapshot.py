#!/usr/bin/env python3
"""Writes the tiny Gemma 3 snapshots bundled for tests and demos.

Outputs (deterministic: fixed seed, fixed tensor order):
  tests/golden/snapshots/tiny_gemma3/          config.json, model.safetensors, tokenizer_config.json (with a
                                               chat_template), generation_config.json, preprocessor_config.json
  tests/golden/snapshots/tiny_gemma3_sharded/  the same tensors split over model-0000{1,2}-of-00002.safetensors plus
                                               model.safetensors.index.json, and the same JSON files

The model is Gemma3ForConditionalGeneration-shaped with tiny dimensions (text: hidden 64, 2 layers, 4 heads, 2 KV
heads, head_dim 16, intermediate 32, vocab 256; vision: SigLIP hidden 32, 2 layers, patch 14, image 28) and Hub tensor
names (language_model.model.*, vision_tower.vision_model.*, multi_modal_projector.*), stored in bf16. The weights are
random: the snapshot exercises loading and shapes, not generation quality.

The safetensors files are written here with numpy + json + struct, independently of loom's writer, so tests that read
them check loom's reader against this script. Needs only numpy (no torch, no GPU):

    python3 tools/reference/make_tiny_snapshot.py
"""
import json
import os
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "snapshots")

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, INTER, VOCAB = 64, 2, 4, 2, 16, 32, 256
V_HIDDEN, V_LAYERS, V_HEADS, V_INTER, PATCH, IMAGE = 32, 2, 2, 32, 14, 28

CONFIG = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "boi_token_index": 250,
    "eoi_token_index": 251,
    "image_token_index": 252,
    "mm_tokens_per_image": 1,
    "initializer_range": 0.02,
    "torch_dtype": "bfloat16",
    "transformers_version": "5.0.0",
    "eos_token_id": [1, 106],
    "text_config": {
        "model_type": "gemma3_text",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "query_pre_attn_scalar": HEAD_DIM,
        "vocab_size": VOCAB,
        "max_position_embeddings": 512,
        "sliding_window": 16,
        "sliding_window_pattern": 2,
        "layer_types": ["sliding_attention", "full_attention"],
        "rope_theta": 1000000.0,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        "rms_norm_eps": 1e-6,
        "hidden_activation": "gelu_pytorch_tanh",
        "final_logit_softcapping": None,
        "attn_logit_softcapping": None,
        "tie_word_embeddings": True,
    },
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": V_HIDDEN,
        "intermediate_size": V_INTER,
        "num_hidden_layers": V_LAYERS,
        "num_attention_heads": V_HEADS,
        "num_channels": 3,
        "patch_size": PATCH,
        "image_size": IMAGE,
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu_pytorch_tanh",
        "vision_use_head": False,
    },
}

# A Gemma-3-style template (turns delimited by <start_of_turn>/<end_of_turn>, images as <start_of_image>).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

TOKENIZER_CONFIG = {
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
    "model_max_length": 512,
    "tokenizer_class": "GemmaTokenizer",
    "chat_template": CHAT_TEMPLATE,
}

GENERATION_CONFIG = {"bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0, "do_sample": True, "top_k": 64,
                     "top_p": 0.95}

PREPROCESSOR_CONFIG = {
    "image_processor_type": "Gemma3ImageProcessor",
    "processor_class": "Gemma3Processor",
    "do_resize": True,
    "size": {"height": IMAGE, "width": IMAGE},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "do_pan_and_scan": False,
}


def tensors():
    """(name, float32 array) in a fixed order; Hub naming."""
    rng = np.random.default_rng(20240601)

    def w(*shape, scale=0.05):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    out = [("language_model.model.embed_tokens.weight", w(VOCAB, HIDDEN, scale=0.5))]
    for i in range(LAYERS):
        p = f"language_model.model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", w(HIDDEN, scale=0.1)),
            (p + "self_attn.q_proj.weight", w(HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.k_proj.weight", w(KV_HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.v_proj.weight", w(KV_HEADS * HEAD_DIM, HIDDEN)),
            (p + "self_attn.o_proj.weight", w(HIDDEN, HEADS * HEAD_DIM)),
            (p + "self_attn.q_norm.weight", w(HEAD_DIM, scale=0.1)),
            (p + "self_attn.k_norm.weight", w(HEAD_DIM, scale=0.1)),
            (p + "post_attention_layernorm.weight", w(HIDDEN, scale=0.1)),
            (p + "pre_feedforward_layernorm.weight", w(HIDDEN, scale=0.1)),
            (p + "mlp.gate_proj.weight", w(INTER, HIDDEN)),
            (p + "mlp.up_proj.weight", w(INTER, HIDDEN)),
            (p + "mlp.down_proj.weight", w(HIDDEN, INTER)),
            (p + "post_feedforward_layernorm.weight", w(HIDDEN, scale=0.1)),
        ]
    out.append(("language_model.model.norm.weight", w(HIDDEN, scale=0.1)))
    v = "vision_tower.vision_model."
    patches = (IMAGE // PATCH) ** 2
    out += [
        (v + "embeddings.patch_embedding.weight", w(V_HIDDEN, 3, PATCH, PATCH)),
        (v + "embeddings.patch_embedding.bias", w(V_HIDDEN)),
        (v + "embeddings.position_embedding.weight", w(patches, V_HIDDEN)),
    ]
    for i in range(V_LAYERS):
        p = f"{v}encoder.layers.{i}."
        out += [(p + "layer_norm1.weight", 1 + w(V_HIDDEN)), (p + "layer_norm1.bias", w(V_HIDDEN))]
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out += [(p + f"self_attn.{proj}.weight", w(V_HIDDEN, V_HIDDEN)), (p + f"self_attn.{proj}.bias", w(V_HIDDEN))]
        out += [
            (p + "layer_norm2.weight", 1 + w(V_HIDDEN)),
            (p + "layer_norm2.bias", w(V_HIDDEN)),
            (p + "mlp.fc1.weight", w(V_INTER, V_HIDDEN)),
            (p + "mlp.fc1.bias", w(V_INTER)),
            (p + "mlp.fc2.weight", w(V_HIDDEN, V_INTER)),
            (p + "mlp.fc2.bias", w(V_HIDDEN)),
        ]
    out += [
        (v + "post_layernorm.weight", 1 + w(V_HIDDEN)),
        (v + "post_layernorm.bias", w(V_HIDDEN)),
        ("multi_modal_projector.mm_soft_emb_norm.weight", w(V_HIDDEN, scale=0.1)),
        ("multi_modal_projector.mm_input_projection_weight", w(V_HIDDEN, HIDDEN)),
    ]
    return out


def to_bf16_bits(x):
    """float32 → bf16 bit patterns, round to nearest even (what torch's .to(bfloat16) does for finite values)."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def write_safetensors(path, items, metadata=None):
    """Hugging Face layout: header padded with spaces to 8 bytes, data in the given order."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, array in items:
        data = to_bf16_bits(array).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_common(directory):
    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, "config.json"), CONFIG)
    write_json(os.path.join(directory, "tokenizer_config.json"), TOKENIZER_CONFIG)
    write_json(os.path.join(directory, "generation_config.json"), GENERATION_CONFIG)
    write_json(os.path.join(directory, "preprocessor_config.json"), PREPROCESSOR_CONFIG)


def main():
    items = tensors()
    single = os.path.join(OUT, "tiny_gemma3")
    write_common(single)
    write_safetensors(os.path.join(single, "model.safetensors"), items, {"format": "pt"})

    sharded = os.path.join(OUT, "tiny_gemma3_sharded")
    write_common(sharded)
    # Text decoder in the first shard, vision tower and projector in the second (as Hub shards split by size).
    first = [(n, a) for n, a in items if n.startswith("language_model.")]
    second = [(n, a) for n, a in items if not n.startswith("language_model.")]
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    for file, part in zip(names, (first, second)):
        write_safetensors(os.path.join(sharded, file), part, {"format": "pt"})
        weight_map.update({n: file for n, _ in part})
    total = sum(a.size * 2 for _, a in items)
    write_json(os.path.join(sharded, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})


if __name__ == "__main__":
    main()
