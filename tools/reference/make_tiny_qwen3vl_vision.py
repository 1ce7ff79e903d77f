"""Builds a tiny random-weight Qwen3-VL snapshot and what Hugging Face transformers' vision tower computes for three
real images, for loom's Qwen3-VL vision golden test.

Run on a machine with torch, transformers 5.17 and PIL (no network needed, CPU is enough, a few seconds):
    python3 tools/reference/make_tiny_qwen3vl_vision.py OUT_DIR        (normally tests/golden/models)
from the repository root (the images are read from tests/golden/images/). Writes
  OUT_DIR/tiny_qwen3vl_vision/           config.json, model.safetensors (float32, < 1 MB), preprocessor_config.json
                                         (the published Qwen3-VL processor settings with min/max pixels 4096/16384)
  OUT_DIR/tiny_qwen3vl_vision_expected/  cases.json and, per image k, little-endian float32 files:
      image_k_pixels.f32        the processor's pixel_values [t*h*w, 3*2*16*16] (PIL backend, which loom's
                                preprocessing follows bit for bit)
      image_k_embeddings.f32    get_image_features(...).pooler_output for the image [tokens, out_hidden]
      image_k_deepstack_j.f32   deepstack feature j (layer order) for the image [tokens, out_hidden]
    cases.json: per image the file name, image_grid_thw, the token count and the file names above.
The tower runs once on all three images packed together (attention is per image through cu_seqlens) and the outputs
are split per image; the script checks that encoding each image alone gives the same numbers.
Model: vision depth 3 (hidden 32, 2 heads, patch 16, temporal 2, merge 2, a 16x16 position table, DeepStack after
blocks [1, 0] so that merger order and layer order differ), a one-layer text model of hidden 32; float32 throughout,
eager attention, fixed seed.
"""

import json
import math
import os
import sys

import torch
from PIL import Image
from transformers import AutoImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration

SEED = 4321
IMAGES = ["photo_121x89.bmp", "rgb_17x400.png", "rgb_1000x37.png"]
PREPROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen3VLProcessor",
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "merge_size": 2,
    "patch_size": 16,
    "resample": 3,
    "rescale_factor": 1 / 255,
    "size": {"longest_edge": 16384, "shortest_edge": 4096},
    "temporal_patch_size": 2,
}


def build_config():
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=128,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=1024,
            rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [3, 3, 2],
                             "mrope_interleaved": True},
            rms_norm_eps=1e-6,
        ),
        vision_config=dict(
            depth=3,
            hidden_size=32,
            hidden_act="gelu_pytorch_tanh",
            intermediate_size=64,
            num_heads=2,
            in_channels=3,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            out_hidden_size=32,
            num_position_embeddings=256,
            deepstack_visual_indexes=[1, 0],
        ),
        tie_word_embeddings=False,
    )


def randomize(model):
    """Weights with enough spread that every op matters (the default init leaves the tower near its biases)."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                value = (1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=g)
            elif name.endswith("bias"):
                value = 0.1 * torch.randn(p.shape, generator=g)
            elif "pos_embed" in name:
                value = torch.randn(p.shape, generator=g)
            else:
                fan_in = math.prod(p.shape[1:]) if p.dim() > 1 else p.shape[0]
                value = 1.5 / math.sqrt(fan_in) * torch.randn(p.shape, generator=g)
            p.copy_(value)


def dump(directory, name, tensor):
    tensor.detach().to(torch.float32).contiguous().numpy().astype("<f4").tofile(os.path.join(directory, name))
    return name


def main():
    out = sys.argv[1]
    torch.manual_seed(SEED)
    snapshot = os.path.join(out, "tiny_qwen3vl_vision")
    expected = os.path.join(out, "tiny_qwen3vl_vision_expected")
    os.makedirs(expected, exist_ok=True)

    model = Qwen3VLForConditionalGeneration(build_config()).eval()
    randomize(model)
    model.save_pretrained(snapshot, safe_serialization=True)
    with open(os.path.join(snapshot, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=2)
    size = os.path.getsize(os.path.join(snapshot, "model.safetensors"))
    assert size < 1 << 20, f"model.safetensors is {size} bytes"
    model = Qwen3VLForConditionalGeneration.from_pretrained(snapshot, dtype=torch.float32,
                                                            attn_implementation="eager").eval()
    processor = AutoImageProcessor.from_pretrained(snapshot, backend="pil")

    images = []
    for name in IMAGES:
        with Image.open(os.path.join("tests", "golden", "images", name)) as image:
            images.append(image.convert("RGB"))
    features = processor(images=images, return_tensors="pt")
    pixels, grids = features["pixel_values"].to(torch.float32), features["image_grid_thw"]
    with torch.no_grad():
        packed = model.get_image_features(pixel_values=pixels, image_grid_thw=grids)
    merge = model.config.vision_config.spatial_merge_size
    tokens = (grids.prod(-1) // merge**2).tolist()
    rows = grids.prod(-1).tolist()
    embeddings = list(packed.pooler_output)
    deepstack = [torch.split(d, tokens) for d in packed.deepstack_features]

    cases, row = [], 0
    for k, name in enumerate(IMAGES):
        image_pixels = pixels[row:row + rows[k]]
        row += rows[k]
        with torch.no_grad():  # one image alone: attention never crosses images, so nothing may change
            alone = model.get_image_features(pixel_values=image_pixels, image_grid_thw=grids[k:k + 1])
        torch.testing.assert_close(alone.pooler_output[0], embeddings[k], rtol=1e-5, atol=1e-5)
        cases.append({
            "image": name,
            "grid_thw": grids[k].tolist(),
            "soft_tokens": tokens[k],
            "pixels": dump(expected, f"image_{k}_pixels.f32", image_pixels),
            "embeddings": dump(expected, f"image_{k}_embeddings.f32", embeddings[k]),
            "deepstack": [dump(expected, f"image_{k}_deepstack_{j}.f32", d[k]) for j, d in enumerate(deepstack)],
        })
    with open(os.path.join(expected, "cases.json"), "w") as f:
        json.dump({"out_hidden_size": model.config.vision_config.out_hidden_size, "cases": cases}, f, indent=1)
    print(json.dumps([{k: c[k] for k in ("image", "grid_thw", "soft_tokens")} for c in cases]))


if __name__ == "__main__":
    main()
