#!/usr/bin/env python3
"""Brute-force reference for the Unigram model (standard library only, deterministic).

For each hand-written tokenizer.json under tests/golden/tokenizer/unigram_tiny/<case>/ (no normalizer, no
pre-tokenizer, so each input is one word), generates a few hundred short strings and, for each, enumerates EVERY
segmentation into vocabulary pieces and unknown characters, keeps the best one under the rules of Hugging Face
`tokenizers` and writes tests/golden/tokenizer/unigram_tiny/<case>/expected.jsonl, one line
{"text": ..., "ids": [...], "decoded": ...} per string.

The rules (tokenizers' Unigram, read from its documentation and behaviour, restated here independently of loom):
- a segment is a vocabulary piece (a piece that is spelled more than once maps to its LAST index), or a single
  character that has no one-character piece, which is the unknown piece, scored min(all scores) - 10;
- a segmentation's score is the sum of its segments' scores, accumulated left to right from 0.0;
- the best segmentation has the highest score; among equal scores, the one whose last segment starts earliest, then
  (recursively) the best prefix before that segment by the same rule;
- adjacent unknowns (and matches of the unknown piece's own text) fuse into one span; a span whose text is a piece
  gets that piece's id, otherwise with byte_fallback its UTF-8 bytes become <0xNN> pieces when all of them exist,
  otherwise it is the unknown id;
- decoding: no decoder joins the pieces with spaces; the ByteFallback + Fuse decoder turns runs of <0xNN> pieces
  into their bytes read as UTF-8 (one U+FFFD per byte when they are not valid UTF-8) and concatenates everything.

Run from the repository root:  python3 tools/reference/unigram_bruteforce.py
"""

import json
import pathlib
import random

ROOT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "tokenizer" / "unigram_tiny"

# Per case: the characters (or multi-character fragments) strings are drawn from.
ALPHABETS = {
    "byte_fallback": ["a", "a", "a", "b", "b", "c", "d", "\u00e9", "\u4f60", "\u2581", "\u2581", "x", "y",
                      "\U0001F600", "\u597d", "<unk>", "<", "k>", "<0x78>"],
    "plain": ["a", "a", "b", "b", "c", "\u00e9", "x", "y", "z", "q", "[UNK]", "[UNK]x"],
}
FIXED = ["", "a", "ab", "abc", "abcd", "aaaa", "xx", "xy", "yx", "\U0001F600\U0001F600", "\u00e9\u4f60",
         "\u2581abc", "dab", "<unk>", "x<unk>y", "[UNK]", "q[UNK]q", "xyz", "abab", "ababab", "\u00e9\u00e9\u00e9"]


def load(case):
    spec = json.loads((ROOT / case / "tokenizer.json").read_text(encoding="utf-8"))
    return spec["model"], spec.get("decoder")


def best_segmentation(text, piece_id, scores, unk_score, unk_id):
    """All segmentations of text, scored; returns the best as a list of (start, end, id)."""
    n = len(text)
    best_key, best_seg = None, None

    def walk(pos, segs, acc, key_parts):
        nonlocal best_key, best_seg
        if pos == n:
            # key from the end: (total, -start of last, total before it, -start of the one before, ...)
            key = []
            totals = key_parts + [acc]
            for i in range(len(segs) - 1, -1, -1):
                key.append(totals[i + 1])
                key.append(-segs[i][0])
            key = tuple(key)
            if best_key is None or key > best_key:
                best_key, best_seg = key, list(segs)
            return
        single = False
        for end in range(pos + 1, n + 1):
            piece = text[pos:end]
            if piece in piece_id:
                if end - pos == 1:
                    single = True
                pid = piece_id[piece]
                segs.append((pos, end, pid))
                walk(end, segs, scores[pid] + acc, key_parts + [acc])
                segs.pop()
        if not single:
            segs.append((pos, pos + 1, unk_id))
            walk(pos + 1, segs, unk_score + acc, key_parts + [acc])
            segs.pop()

    if n:
        walk(0, [], 0.0, [])
    return best_seg or []


def encode(text, model, piece_id, scores):
    unk_id = model.get("unk_id")
    unk_score = min(scores) - 10.0
    segs = best_segmentation(text, piece_id, scores, unk_score, unk_id)
    ids, i = [], 0
    while i < len(segs):
        start, end, pid = segs[i]
        if unk_id is None or pid != unk_id:
            ids.append(pid)
            i += 1
            continue
        while i + 1 < len(segs) and segs[i + 1][2] == unk_id:
            i += 1
            end = segs[i][1]
        i += 1
        span = text[start:end]
        if span in piece_id:
            ids.append(piece_id[span])
            continue
        if model.get("byte_fallback"):
            byte_ids = [piece_id.get("<0x%02X>" % b) for b in span.encode("utf-8")]
            if all(b is not None for b in byte_ids):
                ids.extend(byte_ids)
                continue
        ids.append(unk_id)
    return ids


def decode(ids, pieces, decoder):
    tokens = [pieces[i] for i in ids]
    if decoder is None:
        return " ".join(tokens)
    assert [d["type"] for d in decoder["decoders"]] == ["ByteFallback", "Fuse"]
    out, pending = [], bytearray()

    def flush():
        if pending:
            try:
                out.append(pending.decode("utf-8"))
            except UnicodeDecodeError:
                out.append("\ufffd" * len(pending))
            pending.clear()

    for token in tokens:
        if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            try:
                pending.append(int(token[3:5], 16))
                continue
            except ValueError:
                pass
        flush()
        out.append(token)
    flush()
    return "".join(out)


def strings(case, rng):
    out = list(FIXED)
    alphabet = ALPHABETS[case]
    while len(out) < 320:
        parts, length = [], 0
        target = rng.randint(1, 10)
        while length < target:
            part = rng.choice(alphabet)
            parts.append(part)
            length += len(part)
        out.append("".join(parts))
    return out


def main():
    for case in sorted(ALPHABETS):
        model, decoder = load(case)
        pieces = [p for p, _ in model["vocab"]]
        scores = [float(s) for _, s in model["vocab"]]
        piece_id = {}
        for i, p in enumerate(pieces):
            piece_id[p] = i  # a later duplicate wins
        rng = random.Random(1234 + len(case))
        rows = []
        for text in strings(case, rng):
            ids = encode(text, model, piece_id, scores)
            rows.append({"text": text, "ids": ids, "decoded": decode(ids, pieces, decoder)})
        with open(ROOT / case / "expected.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{case}: {len(rows)} strings")


if __name__ == "__main__":
    main()
