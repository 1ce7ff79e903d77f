#!/usr/bin/env python3
"""Writes tests/golden/snapshots/tiny_chat/: a tiny Gemma 3 chat model with a tokenizer that matches its vocabulary.

The server tests and `make run` need a snapshot that loads, renders a chat prompt, tokenizes it and generates text in
milliseconds. The tiny Gemma 3 test snapshots have no tokenizer; this one has a hand-made Gemma-style tokenizer.json:

  ids 0..8     <pad> <eos> <bos> <unk> <start_of_turn> <end_of_turn> <start_of_image> <end_of_image>
               <image_soft_token> (special added tokens)
  ids 9..264   <0x00>..<0xFF>   byte-fallback tokens (BPE byte_fallback, decoded by the ByteFallback decoder)
  ids 265..359 "▁" and the printable ASCII characters "!".."~" as single-character tokens
  no merges: ASCII text is one token per character, anything else falls back to its UTF-8 bytes.

The model is Gemma3ForConditionalGeneration-shaped (text: hidden 64, 2 layers, 4 heads, 2 KV heads, head_dim 16,
intermediate 64, vocab 360, context 2048; vision: SigLIP hidden 32, 2 layers, patch 14, image 56 → 16 patches pooled
to mm_tokens_per_image 4), stored in bf16, weights random from a fixed seed. The tied embedding rows of the byte and
special tokens are scaled down so that greedy output is mostly printable ASCII: the text is nonsense, but
deterministic, which is what the server tests need (shapes and behaviour, not meaning).

Deterministic (fixed seed, fixed order); needs only numpy + json:

    python3 tools/reference/make_tiny_chat.py
"""
import os

import numpy as np

from make_tiny_snapshot import write_json, write_safetensors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "snapshots", "tiny_chat")

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
            "<end_of_image>", "<image_soft_token>"]
BYTE_BASE = len(SPECIALS)
CHAR_BASE = BYTE_BASE + 256
CHARS = ["\u2581"] + [chr(c) for c in range(0x21, 0x7F)]
VOCAB = CHAR_BASE + len(CHARS)  # 360

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, INTER = 64, 2, 4, 2, 16, 64
V_HIDDEN, V_LAYERS, V_HEADS, V_INTER, PATCH, IMAGE = 32, 2, 2, 32, 14, 56
EOS, BOS, END_OF_TURN, BOI, EOI, IMAGE_TOKEN = 1, 2, 5, 6, 7, 8

CONFIG = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "boi_token_index": BOI,
    "eoi_token_index": EOI,
    "image_token_index": IMAGE_TOKEN,
    "mm_tokens_per_image": 4,
    "initializer_range": 0.02,
    "torch_dtype": "bfloat16",
    "transformers_version": "5.0.0",
    "eos_token_id": [EOS, END_OF_TURN],
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
        "max_position_embeddings": 2048,
        "sliding_window": 64,
        "sliding_window_pattern": 2,
        "layer_types": ["sliding_attention", "full_attention"],
        "rope_theta": 1000000.0,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": None,
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

# The Gemma 3 chat template's structure: a system message is folded into the first user turn, assistant turns are
# "model" turns, images render as <start_of_image> in place.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
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
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
    "model_max_length": 2048,
    "tokenizer_class": "GemmaTokenizer",
    "chat_template": CHAT_TEMPLATE,
}

GENERATION_CONFIG = {"bos_token_id": BOS, "eos_token_id": [EOS, END_OF_TURN], "pad_token_id": 0}

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
    "pan_and_scan_min_crop_size": 28,
    "pan_and_scan_max_num_crops": 2,
    "pan_and_scan_min_ratio_to_activate": 1.2,
}


def tokenizer_json():
    vocab = {name: i for i, name in enumerate(SPECIALS)}
    vocab.update({f"<0x{b:02X}>": BYTE_BASE + b for b in range(256)})
    vocab.update({c: CHAR_BASE + i for i, c in enumerate(CHARS)})
    added = [{"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, name in enumerate(SPECIALS)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                          "invert": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [BOS], "tokens": ["<bos>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }


def tensors():
    """(name, float32 array) in a fixed order; Hub naming."""
    rng = np.random.default_rng(20250301)

    def w(*shape, scale=0.05):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embed = w(VOCAB, HIDDEN, scale=0.3)
    # Tied lm_head: small rows give small logits, so the byte and special tokens rarely win and greedy text stays
    # mostly printable ASCII (and rarely ends early on <eos>).
    embed[:CHAR_BASE] *= 0.01
    out = [("language_model.model.embed_tokens.weight", embed)]
    for i in range(LAYERS):
        p = f"language_model.model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", w(HIDDEN, scale=0.1)),
            (p + "self_attn.q_proj.weight", w(HEADS * HEAD_DIM, HIDDEN, scale=0.2)),
            (p + "self_attn.k_proj.weight", w(KV_HEADS * HEAD_DIM, HIDDEN, scale=0.2)),
            (p + "self_attn.v_proj.weight", w(KV_HEADS * HEAD_DIM, HIDDEN, scale=0.2)),
            (p + "self_attn.o_proj.weight", w(HIDDEN, HEADS * HEAD_DIM, scale=0.2)),
            (p + "self_attn.q_norm.weight", w(HEAD_DIM, scale=0.1)),
            (p + "self_attn.k_norm.weight", w(HEAD_DIM, scale=0.1)),
            (p + "post_attention_layernorm.weight", 3.0 + w(HIDDEN, scale=0.1)),
            (p + "pre_feedforward_layernorm.weight", w(HIDDEN, scale=0.1)),
            (p + "mlp.gate_proj.weight", w(INTER, HIDDEN, scale=0.2)),
            (p + "mlp.up_proj.weight", w(INTER, HIDDEN, scale=0.2)),
            (p + "mlp.down_proj.weight", w(HIDDEN, INTER, scale=0.2)),
            (p + "post_feedforward_layernorm.weight", 3.0 + w(HIDDEN, scale=0.1)),
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


def main():
    os.makedirs(OUT, exist_ok=True)
    write_json(os.path.join(OUT, "config.json"), CONFIG)
    write_json(os.path.join(OUT, "tokenizer_config.json"), TOKENIZER_CONFIG)
    write_json(os.path.join(OUT, "generation_config.json"), GENERATION_CONFIG)
    write_json(os.path.join(OUT, "preprocessor_config.json"), PREPROCESSOR_CONFIG)
    write_json(os.path.join(OUT, "tokenizer.json"), tokenizer_json())
    write_safetensors(os.path.join(OUT, "model.safetensors"), tensors(), {"format": "pt"})


if __name__ == "__main__":
    main()
