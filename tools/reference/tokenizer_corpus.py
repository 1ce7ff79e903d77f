#!/usr/bin/env python3
"""Generates the tokenizer golden corpus (standard library only, deterministic).

Writes:
  tests/golden/tokenizer/corpus.jsonl        one JSON string per line (valid Unicode text, no lone surrogates)
  tests/golden/tokenizer/invalid_utf8.jsonl  one {"b64": <raw bytes, base64>, "replaced": <str>} per line, where
                                             "replaced" is bytes.decode("utf-8", errors="replace") -- the text loom
                                             must behave as if it had been given (invalid bytes become U+FFFD, one
                                             per maximal invalid subsequence, as Python and Rust's from_utf8_lossy do)

Run from the repository root:  python3 tools/reference/tokenizer_corpus.py
The expected ids are produced from these files by tools/reference/tokenizer_expected.py.
"""

import base64
import json
import pathlib
import random

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "tokenizer"

# Hand-written strings: one per behaviour worth pinning down.
FIXED = [
    "",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "Hello world",
    "Hello, world!",
    " Hello world",
    "Hello  world",
    "hello\nworld",
    "hello\r\nworld\r\n",
    "  leading and trailing  ",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll see it's what they've said, we'd've DON'T I'LL",
    "ALL CAPS SENTENCE WITH 'S AND 'T",
    "1234567890",
    "3.14159 2.71828 -42 +7 1e-9 0x1F 1,000,000",
    "Prices: $19.99, €5, £3.50, ¥1000, ₹250",
    "Phone: +1 (555) 123-4567",
    "https://example.com/path/to/page?query=1&b=two#frag",
    "Visit http://www.example.org/index.html or ftp://files.example.net/pub/",
    "email me at someone.name+tag@example.co.uk",
    "你好，世界！",
    "日本語のテキストです。カタカナとひらがな。",
    "한국어 텍스트입니다.",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Привет, мир!",
    "Γειά σου Κόσμε",
    "Ἀρχὴ σοφίας",
    "ሰላም ለዓለም",
    "გამარჯობა მსოფლიო",
    "Բարեւ աշխարհ",
    "வணக்கம் உலகம்",
    "ආයුබෝවන්",
    "မင်္ဂလာပါ",
    "ສະບາຍດີ",
    "សួស្តី​ពិភពលោក",
    "😀😃😄😁",
    "👍🏽 👋🏿",
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈 flag",
    "🇺🇸🇯🇵🇩🇪",
    "❤️ ✨ 🔥",
    "e\u0301 vs \u00e9",
    "A\u030a vs \u00c5 vs \u212b",
    "\u1100\u1161\u11a8 vs \uac01",
    "ﬁ ﬂ ﬃ",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３",
    "z\u0351\u0352\u0353\u0354\u0355 zalgo",
    "\u00a0non-breaking\u00a0space",
    "em\u2003space and\u3000ideographic",
    "zero\u200bwidth\u200cjoiner\u200d",
    "line\u2028separator\u2029paragraph",
    "next\u0085line",
    "\u000bvertical\u000cfeed",
    "tab\tseparated\tvalues",
    "def f(x):\n    return x * 2\n",
    "int main() {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}",
    "for (let i = 0; i < n; i++) { sum += a[i]; }",
    "SELECT * FROM users WHERE id = 1;",
    "<html><body><p>Hello</p></body></html>",
    "<table><tr><td>cell</td></tr></table>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "$ ls -la | grep foo && echo done",
    "    ",
    "          ",
    "\n\n\n\n\n\n\n\n\n\n",
    "\t\t\t\t",
    "a" * 100,
    "ab" * 60,
    " " * 40 + "x",
    "-" * 80,
    "=" * 33,
    "!!!???...",
    "¿Qué tal? ¡Muy bien!",
    "Ça va? Où est la gare? Déjà vu.",
    "Größe Straße Fußgänger",
    "İstanbul ıi ĞğŞş",
    "▁already▁has▁metaspace",
    "▁▁ double",
    "<0x41> looks like a byte token",
    "\ufffd replacement char",
    "\U0001d400\U0001d401 math bold",
    "𠀀𠀁𠀂 CJK extension B",
    "\U000f0000 private use plane",
    "\ue000\uf8ff private use",
    "\u0000nul\u0001ctrl\u001f",
    "\u007fdel",
    "ℕ ℤ ℚ ℝ ∀x∃y: x≤y ∑ ∫",
    "→ ← ↑ ↓ ⇒ ⇔",
    "♠♣♥♦ ☃ ☂",
    "½ ¼ ¾ ² ³ ⁴ ₁",
    "Ⅻ Ⅳ ⑳",
    "١٢٣ ४५६ ๗๘๙",
    "mixed English中文mixed",
    "CamelCaseIdentifier snake_case_identifier kebab-case",
    "don't won't can't shouldn't",
    "'s 's 'S",
    "x'sy 'll'll",
]

# Special tokens of both families, to be placed inside text.
SPECIALS = [
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
    "<end_of_image>", "<image_soft_token>", "[multimodal]", "<unused0>", "<unused99>", "<table>", "</td>", "<h1>",
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>",
    "<tool_call>", "</tool_call>", "<think>", "</think>", "<|fim_prefix|>", "<|box_start|>",
]

WORDS = {
    "latin": "the of and to in is you that it he was for on are as with his they at be this from have or by one "
             "had not but what all were when we there can an your which their said if do will each about how up out "
             "them then she many some so these would other into has more her two like him see time could no make "
             "than first been its who now people my made over did down only way find use may water long little very "
             "after words called just where most know tokenization Transformer encoder decoder".split(),
    "french": "le la les un une des est et à de que qui dans pour pas sur avec être avoir élève été où château "
              "garçon cœur".split(),
    "german": "der die das und ist nicht ein eine zu mit über für Mädchen schön größer Äpfel Übung".split(),
    "cyrillic": "и в не на я что тот быть с а весь это как она по но они к у ты из мы за вы так же от сказать "
                "этот который мочь человек Москва".split(),
    "greek": "και το να είναι ότι με για από στο δεν θα αλλά Αθήνα".split(),
    "arabic": "في من على إلى أن هذا التي الذي مع كان عن هو ما لا كتاب".split(),
    "hebrew": "של את על לא זה עם הוא היא כי גם".split(),
    "devanagari": "और के है में की को से एक यह हैं भारत हिन्दी क्षत्रिय".split(),
    "thai": "ที่ และ ใน การ เป็น ของ ได้ ไม่ มี ภาษาไทย".split(),
    "cjk": "的 一 是 不 了 人 我 在 有 他 这 中 大 来 上 国 个 到 说 们 为 子 和 你 地 出 道 也 时 年 東京 漢字".split(),
    "japanese": "これ それ あれ です ます した テスト コンピュータ ひらがな".split(),
    "korean": "그리고 하지만 우리 사람 한국 서울 컴퓨터 안녕하세요".split(),
    "emoji": "😀 😂 🥲 🤖 👩‍💻 🧑🏾‍🚀 🐍 🎉 💯 🚀 ❤️ 🏴‍☠️ 👁️‍🗨️ 🫠 🇫🇷".split(),
    "code": "def class return if else elif for while import from self None True False lambda yield async await "
            "std::vector<int> #include <iostream> nullptr const auto -> => === !== && || ++ -- += {} [] () ; :: "
            "0x7fff 1e10 `backtick` $var @decorator __init__ **kwargs".split(),
    "numbers": "0 1 7 42 100 2024 3.14 -1 1,234,567 99.9% 10^9 007 12:30 2024-01-31 1st 2nd 3rd".split(),
    "punct": ". , ; : ! ? ... -- — – ( ) [ ] { } \" ' « » „ “ ” ‘ ’ … · • ※ 、 。 ， ！ ？".split(),
}

SEPARATORS = [" ", " ", " ", " ", "  ", "\n", "\n\n", "\t", "", " \n", "\r\n", "   ", "\u00a0", "\u3000"]

# Code point ranges to sample isolated characters from (many need byte fallback in a SentencePiece vocabulary).
RANGES = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF),
    (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x2000, 0x206F),
    (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2500, 0x257F), (0x2600, 0x26FF),
    (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0xFB00, 0xFB4F), (0xFE00, 0xFE0F),
    (0xFF00, 0xFFEF), (0x10000, 0x1007F), (0x10400, 0x1044F), (0x1D400, 0x1D7FF), (0x1F300, 0x1F64F),
    (0x1F900, 0x1F9FF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F), (0xF0000, 0xF00FF),
]


def random_char(rng):
    lo, hi = rng.choice(RANGES)
    while True:
        c = rng.randint(lo, hi)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def sentence(rng, scripts, n_words):
    parts = []
    for i in range(n_words):
        words = WORDS[rng.choice(scripts)]
        w = rng.choice(words)
        r = rng.random()
        if r < 0.1:
            w = w.capitalize()
        elif r < 0.13:
            w = w.upper()
        parts.append(w)
        if i + 1 < n_words:
            parts.append(rng.choice(SEPARATORS) if rng.random() < 0.3 else " ")
    return "".join(parts)


def generated(rng):
    out = []
    scripts = list(WORDS)
    # Single-script sentences.
    for script in scripts:
        for _ in range(40):
            out.append(sentence(rng, [script], rng.randint(1, 20)))
    # Mixed-script sentences.
    for _ in range(500):
        out.append(sentence(rng, rng.sample(scripts, rng.randint(2, 4)), rng.randint(2, 30)))
    # Special tokens inside text.
    for _ in range(300):
        pieces = []
        for _ in range(rng.randint(1, 5)):
            pieces.append(sentence(rng, rng.sample(scripts, 2), rng.randint(0, 6)))
            pieces.append(rng.choice(["", " ", "\n"]) + rng.choice(SPECIALS) + rng.choice(["", " ", "\n"]))
        out.append("".join(pieces))
    # Random characters (byte fallback, rare scripts, controls).
    for _ in range(300):
        out.append("".join(random_char(rng) for _ in range(rng.randint(1, 12))))
    # Whitespace runs mixed with words.
    for _ in range(150):
        ws = rng.choice([" ", "\t", "\n", "\r\n", "\u00a0", "\u2003"]) * rng.randint(1, 40)
        out.append(sentence(rng, ["latin", "code"], rng.randint(1, 4)) + ws + sentence(rng, ["latin"], 2)
                   + (ws if rng.random() < 0.5 else ""))
    # Numbers and URLs.
    for _ in range(100):
        n = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25)))
        out.append(f"{n} {rng.randint(0, 10**6)}.{rng.randint(0, 999)} id={n}x")
    hosts = ["example.com", "例え.jp", "localhost:8080", "sub.domain.org", "xn--bcher-kva.ch"]
    for _ in range(100):
        path = "/".join(rng.choice(WORDS["latin"]) for _ in range(rng.randint(0, 4)))
        out.append(f"{rng.choice(['http', 'https'])}://{rng.choice(hosts)}/{path}?q={rng.randint(0, 999)}&l=ja#x")
    # Combining marks stacked on letters.
    for _ in range(60):
        base = rng.choice("aeiouAEIOUnczs")
        out.append(base + "".join(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(1, 6))) + " test")
    # Emoji with skin tones and ZWJ sequences.
    for _ in range(60):
        e = [rng.choice(WORDS["emoji"]) for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.5:
            e.insert(1, "\u200d")
        if rng.random() < 0.5:
            e.append(chr(rng.randint(0x1F3FB, 0x1F3FF)))
        out.append("".join(e) + rng.choice(["", " ok", "!"]))
    # Code blocks with indentation.
    for _ in range(80):
        lines = []
        for _ in range(rng.randint(1, 6)):
            indent = rng.choice(["", "  ", "    ", "\t", "        "])
            lines.append(indent + " ".join(rng.choice(WORDS["code"]) for _ in range(rng.randint(1, 6))))
        out.append("\n".join(lines) + rng.choice(["", "\n"]))
    return out


def invalid_bytes(rng):
    fixed = [
        b"\xff", b"\xfe\xff", b"abc\x80def", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xf0\x9f\x98",
        b"\xf0\x9f\x98 ok", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
        b"caf\xe9", b"\x80\x80\x80", b"hello \xf0\x80\x80 world", b"\xe6\x97\xa5\xe6\x9c", b"<bos>\xff<eos>",
        b"\xc2\xa0\xc2", b"\xef\xbb\xbfBOM then \xef\xbb",
    ]
    out = list(fixed)
    for _ in range(40):
        good = sentence(rng, ["latin", "cjk", "cyrillic", "emoji"], rng.randint(1, 6)).encode()
        cut = rng.randint(0, len(good))
        junk = bytes(rng.randint(0x80, 0xFF) for _ in range(rng.randint(1, 4)))
        out.append(good[:cut] + junk + good[cut:])
    return out


def main():
    rng = random.Random(20240607)
    corpus = FIXED + generated(rng)
    seen = set()
    unique = []
    for s in corpus:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    assert len(unique) >= 2000, len(unique)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for s in unique:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    with open(OUT / "invalid_utf8.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for b in invalid_bytes(rng):
            record = {"b64": base64.b64encode(b).decode("ascii"), "replaced": b.decode("utf-8", errors="replace")}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(unique)} strings to {OUT / 'corpus.jsonl'}")


if __name__ == "__main__":
    main()
