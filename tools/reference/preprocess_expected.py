#!/usr/bin/env python3
"""Writes what transformers' image processors produce for the test images, for each model family, with the default
backend (torchvision when it is installed, which is transformers 5.x's default) and with the PIL backend.

Run on the machine that has transformers 5.x, torch, torchvision and the model snapshots (only their
preprocessor_config.json / processor_config.json are read), from the repository root:

    python3 tools/reference/preprocess_expected.py --gemma3 <gemma-3 snapshot dir> \
        --gemma4 <gemma-4 snapshot dir> --qwen3vl <Qwen3-VL snapshot dir> --out tests/golden/preprocess

For each family, backend ("torchvision", "pil") and image under tests/golden/images/ (decoded with
PIL Image.open(...).convert("RGB"), as transformers' load_image does, minus EXIF rotation) it writes
    <out>/<family>/<backend>/<image>.pixel_values.npy    float32, exactly as the processor returns it
    <out>/<family>/<backend>/<image>.json               shapes and metadata: num_crops (Gemma 3),
                                                        num_soft_tokens_per_image + image_position_ids file (Gemma 4),
                                                        image_grid_thw (Qwen3-VL)
and <out>/<family>/summary.json with, per image, the largest absolute difference between the two backends.
The loom tests compare against the PIL backend bit for bit; the torchvision numbers document how far the default
transformers path is from it.
"""

import argparse
import json
import os

import numpy as np
from PIL import Image

IMAGES = os.path.join("tests", "golden", "images")


def load_processor(snapshot, backend):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(snapshot, backend=backend)


def as_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.dtype.is_floating_point:
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def run(family, snapshot, out_root):
    names = sorted(n for n in os.listdir(IMAGES) if not n.endswith(".rgb"))
    results = {}
    for backend in ("torchvision", "pil"):
        processor = load_processor(snapshot, backend)
        out_dir = os.path.join(out_root, family, backend)
        os.makedirs(out_dir, exist_ok=True)
        for name in names:
            with Image.open(os.path.join(IMAGES, name)) as image:
                rgb = image.convert("RGB")
            try:
                features = processor(images=[rgb], return_tensors="pt")
            except ValueError as error:  # e.g. Qwen's aspect-ratio limit
                with open(os.path.join(out_dir, name + ".json"), "w") as f:
                    json.dump({"error": str(error)}, f)
                continue
            pixels = as_numpy(features["pixel_values"]).astype(np.float32)
            np.save(os.path.join(out_dir, name + ".pixel_values.npy"), pixels)
            meta = {"processor": type(processor).__name__, "pixel_values_shape": list(pixels.shape)}
            for key in ("num_crops", "num_soft_tokens_per_image", "image_grid_thw"):
                if key in features:
                    meta[key] = as_numpy(features[key]).tolist()
            if "image_position_ids" in features:
                positions = as_numpy(features["image_position_ids"]).astype(np.int64)
                np.save(os.path.join(out_dir, name + ".image_position_ids.npy"), positions)
            with open(os.path.join(out_dir, name + ".json"), "w") as f:
                json.dump(meta, f, indent=1)
            results.setdefault(name, {})[backend] = pixels
    summary = {}
    for name, by_backend in results.items():
        a, b = by_backend.get("torchvision"), by_backend.get("pil")
        if a is not None and b is not None and a.shape == b.shape:
            summary[name] = {"max_abs_difference": float(np.max(np.abs(a - b))),
                             "mean_abs_difference": float(np.mean(np.abs(a - b)))}
        else:
            summary[name] = {"shapes": [None if a is None else list(a.shape), None if b is None else list(b.shape)]}
    with open(os.path.join(out_root, family, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(family, json.dumps(summary))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gemma3")
    parser.add_argument("--gemma4")
    parser.add_argument("--qwen3vl")
    parser.add_argument("--out", default=os.path.join("tests", "golden", "preprocess"))
    args = parser.parse_args()
    for family in ("gemma3", "gemma4", "qwen3vl"):
        snapshot = getattr(args, family)
        if snapshot:
            run(family, snapshot, args.out)


if __name__ == "__main__":
    main()
