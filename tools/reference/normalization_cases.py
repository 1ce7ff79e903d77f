#!/usr/bin/env python3
"""Unicode normalisation cases for loom's normalizers (standard library only, deterministic).

Writes tests/golden/tokenizer/normalization.jsonl: one {"text", "NFC", "NFD", "NFKC", "NFKD"} per line, the forms
computed with Python's unicodedata. The strings mix ASCII with characters that decompose, compose, reorder or have
compatibility mappings, placed right after ASCII letters, at the start and end, and in runs, so that every way of
cutting the text into pieces is exercised. Only characters of Unicode 6.0 or older are used, so the answer does not
depend on which Unicode version a library implements.

Run from the repository root:  python3 tools/reference/normalization_cases.py
"""

import json
import pathlib
import random
import unicodedata

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "tokenizer" / "normalization.jsonl"

PARTS = [
    "a", "e", "o", "A", "n", " ", "!", "1", "x",
    "\u0301", "\u0300", "\u0308", "\u0323", "\u0327", "\u030c", "\u0345", "\u0313",  # combining marks
    "\u00e9", "\u00c5", "\u212b", "\u1e69", "\u1e0b\u0323", "\u0344", "\u0958",  # composed, singletons, exclusions
    "\ufb01", "\u00bd", "\u2460", "\uff21", "\u00a0", "\u2126", "\u1e9b", "\u3300",  # compatibility mappings
    "\u1100", "\u1161", "\u11a8", "\uac00", "\ud55c",  # Hangul jamo and syllables
    "\u4e2d", "\u6587", "\u3099", "\u304b", "\u30ab", "\u309a",  # CJK, kana with voicing marks
    "\u0915\u093c", "\u0627\u0653", "\u05d0\u05b7", "\u0e01\u0e48",  # Indic nukta, Arabic maddah, Hebrew, Thai
    "\u03b1\u0301", "\u0391\u0313\u0301", "\u0438\u0306", "\u00df", "\u0130",
    "\u037e", "\u212a",  # singletons that decompose to ASCII
]
FIXED = ["", "a\u0301", "\u0301a", "e\u0301\u0323", "e\u0323\u0301", "A\u030a", "\u1100\u1161\u11a8",
         "\uac00\u11a8", "x\u0308\u0301y", "\u212b!", "caf\u00e9", "cafe\u0301", "\ufb01ne", "1\u00bd", "n\u0303o"]


def main():
    rng = random.Random(7)
    texts = list(FIXED)
    while len(texts) < 400:
        texts.append("".join(rng.choice(PARTS) for _ in range(rng.randint(1, 8))))
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for text in texts:
            row = {"text": text}
            for form in ("NFC", "NFD", "NFKC", "NFKD"):
                row[form] = unicodedata.normalize(form, text)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(texts)} cases to {OUT}")


if __name__ == "__main__":
    main()
