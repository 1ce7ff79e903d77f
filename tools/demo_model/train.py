"""Trains loom's bundled demo model: a small Gemma 3 vision-language model (SigLIP-style tower + Gemma 3 text decoder)
that answers questions about synthetic images of shapes, with its own small BPE tokenizer and the Gemma 3 chat
template, exported as a standard Hugging Face snapshot that transformers' Gemma3Processor and loom both load.

Run on a machine with a CUDA GPU, torch, transformers and tokenizers (no network needed):
    python3 tools/demo_model/train.py --out models/demo --seed 7
It trains until the held-out accuracy (exact answers, greedy decoding, bf16 weights run in float32) is at least
--target or the time budget is spent, then writes the snapshot, a held-out test set under OUT/testset/ and
OUT/training.json with the measured accuracy.
"""

import argparse
import json
import os
import random
import time

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.utils.data import DataLoader, IterableDataset
from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor,
                          GenerationConfig, PreTrainedTokenizerFast)

import shapes

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
            "<end_of_image>", "<image_soft_token>"]
IMAGE_SIZE, PATCH = 128, 8
HERE = os.path.dirname(os.path.abspath(__file__))


def gemma3_chat_template():
    with open(os.path.join(HERE, "chat_template.jinja")) as f:
        return f.read()


def build_tokenizer(seed):
    rng = random.Random(seed)
    corpus = []
    for _ in range(20000):
        messages, _ = shapes.sample(rng)
        corpus += [m["content"] if isinstance(m["content"], str) else m["content"][-1].get("text", "") for m in messages]
        corpus += [m["content"][0].get("text", "") for m in messages if not isinstance(m["content"], str)]
    corpus += ["user\n", "model\n", "\n\n"] * 100
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<end_of_turn>", pad_token="<pad>", unk_token="<unk>",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
        chat_template=gemma3_chat_template())
    fast.padding_side = "left"
    return fast


def build_processor(tokenizer, tokens_per_image):
    image_processor = Gemma3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3,
                                           image_std=[0.5] * 3, do_pan_and_scan=False)
    return Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                           chat_template=gemma3_chat_template(), image_seq_length=tokens_per_image)


def build_model(tokenizer, tokens_per_image):
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIALS}
    config = Gemma3Config(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=64, query_pre_attn_scalar=64,
                         sliding_window=128, sliding_window_pattern=2, rope_theta=1_000_000.0,
                         rope_local_base_freq=10_000.0, max_position_embeddings=1024, rms_norm_eps=1e-6,
                         pad_token_id=ids["<pad>"], bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"]),
        vision_config=dict(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=PATCH, layer_norm_eps=1e-6, vision_use_head=False),
        mm_tokens_per_image=tokens_per_image, boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"], image_token_index=ids["<image_soft_token>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]], pad_token_id=ids["<pad>"])
    return Gemma3ForConditionalGeneration(config)


def answer_mask(input_ids, tokenizer):
    """Marks the tokens of every assistant answer (through its <end_of_turn>) as training targets."""
    sot, eot = tokenizer.convert_tokens_to_ids("<start_of_turn>"), tokenizer.convert_tokens_to_ids("<end_of_turn>")
    model_prefix = tokenizer.encode("model\n", add_special_tokens=False)
    labels = torch.full_like(input_ids, -100)
    ids = input_ids.tolist()
    i = 0
    while i < len(ids):
        if ids[i] == sot and ids[i + 1:i + 1 + len(model_prefix)] == model_prefix:
            j = i + 1 + len(model_prefix)
            while j < len(ids) and ids[j] != eot:
                labels[j] = input_ids[j]
                j += 1
            if j < len(ids):
                labels[j] = input_ids[j]
            i = j
        i += 1
    return labels


def encode_fast(processor, messages, image):
    """What Gemma3Processor does (template, in-place image expansion, tokenize, resize, normalise), without its
    per-call overhead, so the data loader keeps the GPU busy. main() checks it against the processor."""
    text = processor.apply_chat_template(messages, tokenize=False)
    text = text.replace(processor.boi_token, processor.full_image_sequence)
    ids = torch.tensor(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    pixels = None
    if image is not None:
        resized = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR), dtype=np.float32)
        pixels = torch.from_numpy((resized / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None].contiguous()
    return ids, pixels


class Conversations(IterableDataset):
    def __init__(self, processor, seed):
        self.processor, self.seed = processor, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = random.Random(self.seed * 1000 + (info.id if info else 0))
        image_id = self.processor.tokenizer.convert_tokens_to_ids("<image_soft_token>")
        while True:
            messages, image = shapes.sample(rng)
            ids, pixels = encode_fast(self.processor, messages, image)
            yield {"input_ids": ids, "token_type_ids": (ids == image_id).long(),
                   "labels": answer_mask(ids, self.processor.tokenizer), "pixel_values": pixels}


def collate(items, pad_id):
    length = max(len(x["input_ids"]) for x in items)

    def pad(key, value):
        return torch.stack([torch.cat([x[key], torch.full((length - len(x[key]),), value, dtype=x[key].dtype)])
                            for x in items])

    batch = {"input_ids": pad("input_ids", pad_id), "token_type_ids": pad("token_type_ids", 0),
             "labels": pad("labels", -100)}
    batch["attention_mask"] = torch.stack([torch.cat([torch.ones(len(x["input_ids"]), dtype=torch.long),
                                                      torch.zeros(length - len(x["input_ids"]), dtype=torch.long)])
                                           for x in items])
    pixels = [x["pixel_values"] for x in items if x["pixel_values"] is not None]
    batch["pixel_values"] = torch.cat(pixels) if pixels else None
    return batch


def held_out(seed, count):
    rng = random.Random(seed)
    return [shapes.sample(rng) for _ in range(count)]


@torch.no_grad()
def accuracy(model, processor, cases, device, batch_size=64):
    """Exact-match accuracy of the final answer of each conversation, greedy, prompts left-padded."""
    model.eval()
    correct, results = 0, []
    groups = [[c for c in cases if c[1] is not None], [c for c in cases if c[1] is None]]
    for group in groups:
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            texts = [processor.apply_chat_template(m[:-1], tokenize=False, add_generation_prompt=True) for m, _ in chunk]
            images = [[img] for _, img in chunk] if chunk[0][1] is not None else None
            inputs = processor(text=texts, images=images, return_tensors="pt", padding=True,
                               add_special_tokens=False).to(device)
            out = model.generate(**inputs, max_new_tokens=32, do_sample=False)
            for (messages, _), row in zip(chunk, out[:, inputs["input_ids"].shape[1]:]):
                text = processor.tokenizer.decode(row, skip_special_tokens=True).strip()
                ok = text == messages[-1]["content"]
                correct += ok
                results.append((messages, text, ok))
    model.train()
    return correct / len(cases), results


def answer_kind(answer):
    """The question kind an expected answer belongs to, for the per-kind accuracy report."""
    if answer.startswith("There"):
        return "count"
    if answer.startswith("It is"):
        return "shape"
    if answer.startswith("The "):
        return "colour"
    if answer.startswith(("A ", "An ")):
        return "describe"
    return "text"


def breakdown(results):
    kinds = {}
    for messages, _, ok in results:
        total = kinds.setdefault(answer_kind(messages[-1]["content"]), [0, 0])
        total[0] += ok
        total[1] += 1
    return " ".join(f"{k} {c}/{n}" for k, (c, n) in sorted(kinds.items()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tokens-per-image", type=int, default=16, help="soft tokens per image (a square number)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    device = "cuda"

    tokenizer = build_tokenizer(args.seed)
    processor = build_processor(tokenizer, args.tokens_per_image)
    model = build_model(tokenizer, args.tokens_per_image).to(device)
    print("parameters", sum(p.numel() for p in model.parameters()), "vocab", len(tokenizer))
    check_rng = random.Random(0)
    for _ in range(20):
        messages, image = shapes.sample(check_rng)
        ids, pixels = encode_fast(processor, messages, image)
        ref = processor(text=processor.apply_chat_template(messages, tokenize=False),
                        images=[image] if image is not None else None, return_tensors="pt", add_special_tokens=False)
        assert ids.tolist() == ref["input_ids"][0].tolist(), "fast encoding differs from the processor"
        if image is not None:
            print("pixel difference fast vs processor", (pixels - ref["pixel_values"]).abs().max().item())
    loader = DataLoader(Conversations(processor, args.seed), batch_size=args.batch, num_workers=12,
                        collate_fn=lambda items: collate(items, tokenizer.pad_token_id), prefetch_factor=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    total_steps, warmup = 100000, 200
    budget = args.minutes * 60
    start, step, best = time.time(), 0, 0.0
    # Cosine decay over the time budget rather than a step count: the step rate depends on the machine.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(
        0.03, 0.5 * (1 + float(np.cos(min(1.0, (time.time() - start) / budget) * np.pi)))))
    validation = held_out(args.seed + 1, 256)
    model.train()
    for batch in loader:
        batch = {k: (v.to(device) if v is not None else None) for k, v in batch.items()}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
        if step % 2000 == 0 or time.time() - start > args.minutes * 60 or step >= total_steps:
            acc, results = accuracy(model, processor, validation, device)
            print(f"step {step} validation accuracy {acc:.4f} ({breakdown(results)})", flush=True)
            best = max(best, acc)
            if acc >= args.target or time.time() - start > args.minutes * 60 or step >= total_steps:
                break

    os.makedirs(args.out, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
    processor.save_pretrained(args.out)
    ids = model.config
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                     eos_token_id=ids.eos_token_id, do_sample=False).save_pretrained(args.out)

    # What users get: the bf16 snapshot, run in float32 (the reference loom is compared against).
    reloaded = Gemma3ForConditionalGeneration.from_pretrained(args.out, torch_dtype=torch.float32).to(device)
    test_cases = held_out(args.seed + 2, 1000)
    final_acc, final_results = accuracy(reloaded, processor, test_cases, device)
    print(f"held-out accuracy (1000 conversations, bf16 weights, float32 compute): {final_acc:.4f} "
          f"({breakdown(final_results)})")

    # The committed test set: 48 image conversations with their images and expected answers.
    testset_dir = os.path.join(args.out, "testset")
    os.makedirs(testset_dir, exist_ok=True)
    rng = random.Random(args.seed + 3)
    cases = []
    while len(cases) < 48:
        messages, image = shapes.sample(rng)
        if image is None:
            continue
        cases.append((messages, image))
    set_acc, results = accuracy(reloaded, processor, cases, device)
    with open(os.path.join(testset_dir, "cases.jsonl"), "w") as f:
        for k, ((messages, image), (_, text, ok)) in enumerate(zip(cases, results)):
            name = f"{k:02d}.png"
            image.save(os.path.join(testset_dir, name))
            f.write(json.dumps({"image": name, "messages": messages[:-1], "answer": messages[-1]["content"],
                                "transformers_answer": text}) + "\n")
    print(f"test set accuracy (48 conversations): {set_acc:.4f}")
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"seed": args.seed, "steps": step, "batch": args.batch, "minutes": (time.time() - start) / 60,
                   "validation_accuracy": best if best else None, "held_out_accuracy": final_acc,
                   "test_set_accuracy": set_acc, "parameters": sum(p.numel() for p in reloaded.parameters())},
                  f, indent=1)


if __name__ == "__main__":
    main()
