#!/usr/bin/env python3
"""Builds a realistic Unigram tokenizer with Hugging Face `tokenizers` and records its answers on the golden corpus.

Needs: pip install tokenizers   (no GPU, no network; reads only files of this repository)

Usage (from the repository root):
  python3 tools/reference/unigram_expected.py

Writes tests/golden/tokenizer/unigram_hf/:
  tokenizer.json   saved by tokenizers.Tokenizer.save: a Unigram model (unk_id 0, byte_fallback on) over a
                   vocabulary generated deterministically from the corpus (frequent substrings of the NFKC,
                   Metaspace-marked text, scored by log relative frequency, plus <unk> <s> </s> and the 256 <0xNN>
                   byte pieces), an NFKC normalizer, a Metaspace pre-tokenizer (prepend_scheme "always"), the
                   decoder Sequence[ByteFallback, Metaspace] and the template "<s> $A </s>";
  expected.jsonl   one line per line of tests/golden/tokenizer/corpus.jsonl:
                   {"ids": encode(text).ids, "ids_no_special": encode(text, add_special_tokens=False).ids,
                    "decoded": decode(ids, skip_special_tokens=False),
                    "decoded_skip_special": decode(ids, skip_special_tokens=True)}.
tests/text/unigram_test.cpp (Unigram.HuggingFaceRealisticTokenizerOnTheCorpus) compares loom with these files and
skips while the folder is absent.
"""

import collections
import json
import math
import pathlib
import unicodedata

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

REPO = pathlib.Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "golden" / "tokenizer" / "corpus.jsonl"
OUT = REPO / "tests" / "golden" / "tokenizer" / "unigram_hf"

MARK = "\u2581"
MAX_PIECE_CHARS = 6
MULTI_CHAR_PIECES = 6000
MIN_CHAR_COUNT = 3  # rarer characters are left out of the vocabulary: they exercise unk and byte fallback


def read_corpus():
    with open(CORPUS, encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f.read().split("\n") if line]


def generated_vocab(texts):
    chars = collections.Counter()
    substrings = collections.Counter()
    for text in texts:
        marked = MARK + unicodedata.normalize("NFKC", text).replace(" ", MARK)
        chars.update(marked)
        for word in marked.split(MARK):
            word = MARK + word
            for i in range(len(word)):
                for n in range(2, MAX_PIECE_CHARS + 1):
                    if i + n <= len(word):
                        substrings[word[i:i + n]] += 1
    total = sum(chars.values()) + sum(substrings.values())
    singles = sorted((c for c, n in chars.items() if n >= MIN_CHAR_COUNT), key=lambda c: (-chars[c], c))
    multi = sorted((s for s, n in substrings.items() if n >= 2), key=lambda s: (-substrings[s] * len(s), s))
    pieces = [(c, math.log(chars[c] / total)) for c in singles]
    pieces += [(s, math.log(substrings[s] / total) + 0.5 * len(s)) for s in multi[:MULTI_CHAR_PIECES]]
    pieces.sort(key=lambda p: (-p[1], p[0]))
    head = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)] + [("<0x%02X>" % b, 0.0) for b in range(256)]
    seen = {p for p, _ in head}
    return head + [(p, round(s, 6)) for p, s in pieces if p not in seen]


def build(vocab):
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=True))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=MARK, prepend_scheme="always")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                     decoders.Metaspace(replacement=MARK, prepend_scheme="always")])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                       special_tokens=[("<s>", 1), ("</s>", 2)])
    return tok


def main():
    texts = read_corpus()
    tok = build(generated_vocab(texts))
    OUT.mkdir(parents=True, exist_ok=True)
    tok.save(str(OUT / "tokenizer.json"))
    tok = Tokenizer.from_file(str(OUT / "tokenizer.json"))  # answer from the saved file, as loom reads it
    with open(OUT / "expected.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for text in texts:
            ids = tok.encode(text).ids
            row = {
                "ids": ids,
                "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {OUT / 'tokenizer.json'} ({tok.get_vocab_size()} pieces) and expected.jsonl ({len(texts)} lines)")


if __name__ == "__main__":
    main()
