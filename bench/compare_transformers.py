"""Batch-1 greedy decode of loom against Hugging Face transformers on the same snapshot, in one run on one GPU.

Usage (a machine with a CUDA GPU, torch and transformers; no network needed):
    loom bench --synthetic gemma3-4b --format bf16 --save /tmp/g3-4b        # once: a bf16 snapshot on disk
    python3 bench/compare_transformers.py --model /tmp/g3-4b --loom build/rel/loom
    # a quantized loom snapshot of the same preset and seed, transformers on the bf16 one:
    loom bench --synthetic gemma3-4b --format affine-4 --save /tmp/g3-4b-a4
    python3 bench/compare_transformers.py --model /tmp/g3-4b --loom-model /tmp/g3-4b-a4 --loom build/rel/loom

What it does:
  (a) transformers: loads --model (config.json + model.safetensors; no tokenizer needed) as the class its config
      names (Gemma3ForConditionalGeneration, Gemma3ForCausalLM, Gemma4ForConditionalGeneration; else
      AutoModelForCausalLM) in bfloat16 on cuda with sdpa attention; builds a static random prompt of --prompt-tokens
      ids (fixed seed, no tokenizer); after --warmup untimed runs, times generate() greedily for 1 token (time to
      first token: the prefill) and for --gen-tokens tokens (min_new_tokens = max_new_tokens, so every run makes exactly that many), with
      torch.cuda.synchronize() around each; decode tokens/s = (gen − 1) / (T(gen) − T(1)), best of --repeats.
  (b) loom: frees the GPU, then runs `loom bench --model LOOM_MODEL --device cuda --json` with the same prompt and
      generation lengths and reads its report (Model::forward decode, engine decode, TTFT, roofline, prefill sweep).
Prints one JSON document: both sides' figures and the ratios loom / transformers. When loom runs a quantized format,
transformers runs the bf16 snapshot of the same preset and seed (it has no kernel for loom's formats): the output
says so in "weights_note".
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="bf16 snapshot folder transformers loads")
    parser.add_argument("--loom-model", help="snapshot folder loom benchmarks (default: --model)")
    parser.add_argument("--loom", default="build/rel/loom", help="the loom binary")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loom-args", default="", help="extra arguments for loom bench (e.g. '--prefill-tokens 512')")
    return parser.parse_args()


def model_class(transformers, architecture):
    cls = getattr(transformers, architecture, None)
    return cls if cls is not None else transformers.AutoModelForCausalLM


def text_config(config):
    return config.get("text_config", config)


def prompt_ids(torch, config, tokens, seed):
    """Random ids in [10, vocab) that avoid every special id the config names (images, turn markers)."""
    vocab = text_config(config)["vocab_size"]
    special = {v for k, v in config.items() if k.endswith(("_token_id", "_token_index")) and isinstance(v, int)}
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, vocab, (1, tokens), generator=generator)
    for s in special:
        ids[ids == s] = 10
    ids[0, 0] = 2  # <bos>
    return ids


def time_transformers(args, config):
    import torch
    import transformers

    architecture = config["architectures"][0]
    cls = model_class(transformers, architecture)
    start = time.perf_counter()
    try:
        model = cls.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa", device_map="cuda")
    except (ImportError, ValueError):  # device_map needs accelerate: load on the host, then move
        model = cls.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa").to("cuda")
    model.eval()
    load_s = time.perf_counter() - start
    ids = prompt_ids(torch, config, args.prompt_tokens, args.seed).to("cuda")
    attention = torch.ones_like(ids)

    def generate(new_tokens):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        assert out.shape[1] == ids.shape[1] + new_tokens, out.shape
        return elapsed

    for _ in range(args.warmup):
        generate(1)
        generate(args.gen_tokens)
    torch.cuda.reset_peak_memory_stats()
    first = min(generate(1) for _ in range(args.repeats))
    full = min(generate(args.gen_tokens) for _ in range(args.repeats))
    result = {
        "class": cls.__name__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "dtype": "bfloat16",
        "attn_implementation": "sdpa",
        "load_s": load_s,
        "ttft_ms": first * 1000.0,
        "prefill_tokens_per_s": args.prompt_tokens / first,
        "decode_ms_per_token": (full - first) * 1000.0 / max(args.gen_tokens - 1, 1),
        "decode_tokens_per_s": max(args.gen_tokens - 1, 1) / (full - first),
        "end_to_end_tokens_per_s": args.gen_tokens / full,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        "device_name": torch.cuda.get_device_name(0),
    }
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return result


def run_loom(args, loom_model):
    command = [args.loom, "bench", "--model", loom_model, "--device", "cuda", "--json",
               "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens),
               "--seed", str(args.seed)] + args.loom_args.split()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"loom bench failed ({done.returncode}): {' '.join(command)}")
    return json.loads(done.stdout), command


def main():
    args = parse_args()
    loom_model = args.loom_model or args.model
    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    hf = time_transformers(args, config)
    loom, command = run_loom(args, loom_model)

    loom_decode = loom["forward"]["decode_tokens_per_s"]
    loom_engine_decode = loom["engine"]["decode_tokens_per_s"]
    fmt = loom["format"]
    if loom_model == args.model:
        note = "the same bf16 snapshot on both sides"
    else:
        note = f"transformers runs {args.model} (bf16); loom runs {loom_model} ({fmt}), built from the same preset and seed"
    if fmt.lower() != "bf16":
        note += f"; transformers has no kernel for {fmt}, so it runs these weights in bf16"
    report = {
        "model": args.model,
        "loom_model": loom_model,
        "architecture": config["architectures"][0],
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "weights_note": note,
        "transformers": hf,
        "loom": {
            "format": fmt,
            "device_name": loom.get("device_name"),
            "decode_tokens_per_s": loom_decode,
            "engine_decode_tokens_per_s": loom_engine_decode,
            "ttft_ms": loom["engine"]["ttft_ms"],
            "prefill_ms": loom["forward"]["prefill_ms"],
            "decode_roofline_ratio": (loom.get("roofline") or {}).get("decode_roofline_ratio"),
            "peak_device_bytes_before_kv": loom["memory"]["peak_device_bytes_before_kv"],
            "command": " ".join(command),
            "report": loom,
        },
        "ratio": {
            "decode_tokens_per_s_loom_over_transformers": loom_decode / hf["decode_tokens_per_s"],
            "engine_decode_tokens_per_s_loom_over_transformers": loom_engine_decode / hf["decode_tokens_per_s"],
            "prefill_ms_transformers_over_loom": hf["ttft_ms"] / loom["forward"]["prefill_ms"],
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
