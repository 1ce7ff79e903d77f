"""Builds a tiny random-weight Gemma 4 snapshot and the image features Hugging Face transformers computes for it in
float32, for loom's Gemma 4 vision tower golden test (tests/model/gemma4_vision_golden_test.cpp).

Run on a machine with torch, torchvision and transformers 5.17 (no network needed, well under a minute):
    python3 tools/reference/make_tiny_gemma4_vision.py tests/golden/models
Writes
  OUT_DIR/tiny_gemma4_vision/: config.json, model.safetensors (bf16; a 2-layer vision tower with finite clip bounds
    and standardize on, a 2-layer text model), preprocessor_config.json (Gemma4ImageProcessor, max_soft_tokens 70);
  OUT_DIR/tiny_gemma4_vision_expected/: cases.json and per image k (little-endian, row-major):
    case_K_pixels.f32 [630, 768] and case_K_positions.i64 [630, 2]: the default processor's pixel_values and
      image_position_ids (torchvision backend when torchvision is installed);
    case_K_features.f32 [soft_tokens, text hidden]: get_image_features(...).pooler_output for those pixels (the rows
      masked_scatter puts at the image tokens), case_K_soft.f32 [soft_tokens, vision hidden]: the tower's
      last_hidden_state (pooled, scaled, standardized; before embed_vision);
    case_K_pil_pixels.f32, case_K_pil_features.f32: the same through Gemma4ImageProcessorPil (the backend loom
      reproduces bit-exactly), when that class is available.
The images are committed test pictures of different aspect ratios (tests/golden/images/), opened with
PIL.Image.open(...).convert("RGB").
"""

import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from transformers import Gemma4Config, Gemma4ForConditionalGeneration
from transformers.models.gemma4.image_processing_gemma4 import Gemma4ImageProcessor

try:
    from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil
except ImportError:  # torchvision-only installs
    Gemma4ImageProcessorPil = None

SEED = 4321
MAX_SOFT_TOKENS = 70  # the smallest budget the processor allows: 630 patches
IMAGES = ["rgba_121x89.png", "rgb_17x400.png", "rgb_1000x37.png"]  # landscape, tall, very wide
IMAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden", "images")


def build_config():
    return Gemma4Config(
        text_config=dict(
            vocab_size=512,
            vocab_size_per_layer_input=512,
            hidden_size=48,
            hidden_size_per_layer_input=8,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            layer_types=["sliding_attention", "full_attention"],
            sliding_window=8,
            max_position_embeddings=256,
            rms_norm_eps=1e-6,
            hidden_activation="gelu_pytorch_tanh",
            final_logit_softcapping=30.0,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,  # GQA, and head_dim·heads ≠ hidden
            head_dim=16,
            hidden_activation="gelu_pytorch_tanh",
            rms_norm_eps=1e-6,
            pooling_kernel_size=3,
            patch_size=16,
            position_embedding_size=160,  # the 1000×37 picture is 129 patches wide at 70 tokens
            use_clipped_linears=True,
            standardize=True,
        ),
        audio_config=None,
        image_token_id=500,
        boi_token_id=501,
        eoi_token_id=502,
        video_token_id=503,
        audio_token_id=504,
        boa_token_id=505,
        eoa_token_index=506,
    )


def randomize(model):
    """Random weights where every op matters: Gemma 4 norms scale by w (init 1), clip bounds finite and biting."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif "position_embedding_table" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / max(1.0, p.shape[-1] ** 0.5) * 0.8)
        vision = model.model.vision_tower
        k = 0
        for name, buf in vision.named_buffers():
            u = float(torch.rand((), generator=g))
            if name.endswith("input_min"):
                buf.fill_(-float("inf") if k % 3 == 0 else -(0.8 + 0.7 * u))
            elif name.endswith("input_max"):
                buf.fill_(0.8 + 0.7 * u)
            elif name.endswith("output_min"):
                buf.fill_(-(0.6 + 0.6 * u))
            elif name.endswith("output_max"):
                buf.fill_(float("inf") if k % 2 == 0 else 0.6 + 0.6 * u)
                k += 1
        vision.std_bias.copy_(0.5 * torch.randn(vision.std_bias.shape, generator=g))
        vision.std_scale.copy_(0.5 + 1.5 * torch.rand(vision.std_scale.shape, generator=g))


def features(model, pixel_values, position_ids):
    with torch.no_grad():
        out = model.model.get_image_features(pixel_values, position_ids, return_dict=True)
    assert len(out.pooler_output) == 1
    return out.pooler_output[0].float().numpy(), out.last_hidden_state.float().numpy()


def main():
    out = sys.argv[1]
    torch.manual_seed(SEED)
    config = build_config()
    model = Gemma4ForConditionalGeneration(config).eval()
    randomize(model)
    snapshot = os.path.join(out, "tiny_gemma4_vision")
    # Stored in bf16 like published snapshots; the reference runs in float32 on the same rounded weights.
    model.to(torch.bfloat16).save_pretrained(snapshot, safe_serialization=True)
    model = Gemma4ForConditionalGeneration.from_pretrained(snapshot, dtype=torch.float32).eval()
    processor = Gemma4ImageProcessor(max_soft_tokens=MAX_SOFT_TOKENS, patch_size=16, pooling_kernel_size=3)
    processor.save_pretrained(snapshot)
    pil_processor = Gemma4ImageProcessorPil(max_soft_tokens=MAX_SOFT_TOKENS, patch_size=16, pooling_kernel_size=3) \
        if Gemma4ImageProcessorPil is not None else None

    expected = os.path.join(out, "tiny_gemma4_vision_expected")
    os.makedirs(expected, exist_ok=True)

    def save(name, array, dtype):
        np.ascontiguousarray(array, dtype=dtype).tofile(os.path.join(expected, name))
        return name

    cases = []
    for k, file in enumerate(IMAGES):
        image = Image.open(os.path.join(IMAGE_DIR, file)).convert("RGB")
        inputs = processor(images=[image], return_tensors="pt")
        pixels, positions = inputs["pixel_values"], inputs["image_position_ids"]
        tokens = int(inputs["num_soft_tokens_per_image"][0])
        feats, soft = features(model, pixels, positions)
        assert feats.shape == (tokens, config.text_config.hidden_size), feats.shape
        case = {"image": file, "max_soft_tokens": MAX_SOFT_TOKENS, "soft_tokens": tokens,
                "patches": int(pixels.shape[1]), "patch_elements": int(pixels.shape[2]),
                "pixels": save(f"case_{k}_pixels.f32", pixels[0].float().numpy(), "<f4"),
                "positions": save(f"case_{k}_positions.i64", positions[0].numpy(), "<i8"),
                "features": save(f"case_{k}_features.f32", feats, "<f4"),
                "soft": save(f"case_{k}_soft.f32", soft, "<f4"),
                "pil_pixels": None, "pil_features": None}
        if pil_processor is not None:
            pil = pil_processor(images=[image], return_tensors="pt")
            assert torch.equal(pil["image_position_ids"], positions)
            pil_feats, _ = features(model, pil["pixel_values"], pil["image_position_ids"])
            case["pil_pixels"] = save(f"case_{k}_pil_pixels.f32", pil["pixel_values"][0].float().numpy(), "<f4")
            case["pil_features"] = save(f"case_{k}_pil_features.f32", pil_feats, "<f4")
            case["pil_max_pixel_difference"] = float((pil["pixel_values"] - pixels).abs().max())
        cases.append(case)
        print(file, "tokens", tokens, "features", feats.shape)
    with open(os.path.join(expected, "cases.json"), "w") as f:
        json.dump({"text_hidden_size": config.text_config.hidden_size,
                   "vision_hidden_size": config.vision_config.hidden_size, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
