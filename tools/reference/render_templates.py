#!/usr/bin/python3
"""Reference renderer for loom's chat-template conformance test.

Renders every chat template given on the command line over a set of conversations with Jinja2 configured exactly as
Hugging Face transformers configures it (utils/chat_template_utils.py, _compile_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]) with transformers'
tojson filter and its raise_exception / strftime_now globals. transformers' `{% generation %}` extension is
reproduced as a block that renders its body.

Writes one JSON document to stdout: {"cases": [{"template": name, "context": {...}, "ok": bool,
"output": str (when ok), "error": str (exception type when not ok)}]}.

Usage:
  /usr/bin/python3 tools/reference/render_templates.py --templates T1.jinja T2 tokenizer_config.json ... \
      [--conversations tests/golden/templates/conversations.json] [--random N --seed S]
  /usr/bin/python3 tools/reference/render_templates.py --snippets tests/golden/templates/snippets.json

A template argument is a .jinja file, or a tokenizer_config.json whose "chat_template" field is used. Conversation
files hold a JSON list of render contexts (messages, tools, add_generation_prompt, bos_token, eos_token, extra
keyword arguments). --random adds N generated conversations from a seeded generator (deterministic for a seed).
"""

import argparse
import json
import os
import random
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTracker(Extension):
    """transformers' AssistantTracker, reduced to rendering the body of `{% generation %}` blocks."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def load_template(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        text = json.loads(text)["chat_template"]
        name = os.path.basename(os.path.dirname(os.path.dirname(path))) or path
    else:
        name = os.path.splitext(os.path.basename(path))[0]
    return name, text


# ---- random conversations ----

WORDS = ["hello", "world", "Paris", "weather", "  padded  ", "line\nbreak", "tab\there", "quote's", 'dq"s', "{{ not }}",
         "{% raw %}", "ünïcödé", "日本語", "emoji 😀", "", " ", "\n", "<tool_response>x</tool_response>", "a\\b",
         "<think>\nhm\n</think>\n\nanswer", "1.5", "None"]


def text(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 4)))


def content(rng, allow_images=True):
    kind = rng.random()
    if kind < 0.6:
        return text(rng)
    if kind < 0.65:
        return None
    parts = []
    for _ in range(rng.randint(0, 3)):
        r = rng.random()
        if allow_images and r < 0.3:
            parts.append(rng.choice([{"type": "image"}, {"type": "image", "image": "file.png"},
                                     {"type": "image_url", "image_url": {"url": "data:x"}}]))
        else:
            parts.append({"type": "text", "text": text(rng)})
    return parts


def arguments(rng):
    args = {"location": rng.choice(["Paris", "Tokyo", "Zürich"]), "unit": rng.choice(["c", "f"])}
    if rng.random() < 0.3:
        args["days"] = rng.choice([1, 2.5, True, None, [1, 2], {"nested": "yes"}])
    return json.dumps(args, ensure_ascii=False) if rng.random() < 0.3 else args


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
                                      "parameters": {"type": "object", "properties": {
                                          "location": {"type": "string", "description": "City"},
                                          "unit": {"type": "string", "enum": ["c", "f"]}},
                                          "required": ["location"]}}},
    {"type": "function", "function": {"name": "search", "description": "Search the web, ünïcode",
                                      "parameters": {"type": "object", "properties": {
                                          "query": {"type": "string"}, "limit": {"type": "integer", "default": 5}}}}},
]


def random_conversation(rng):
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": content(rng, allow_images=False)})
    alternate = rng.random() < 0.6
    for turn in range(rng.randint(0, 5)):
        role = ("user" if turn % 2 == 0 else "assistant") if alternate else rng.choice(
            ["user", "assistant", "tool", "system"])
        message = {"role": role, "content": content(rng)}
        if role == "assistant" and rng.random() < 0.3:
            calls = []
            for _ in range(rng.randint(1, 2)):
                call = {"name": rng.choice(["get_weather", "search"]), "arguments": arguments(rng)}
                calls.append({"type": "function", "function": call} if rng.random() < 0.8 else call)
            message["tool_calls"] = calls
        if role == "assistant" and rng.random() < 0.2:
            message["reasoning_content"] = text(rng)
        messages.append(message)
        if role == "assistant" and "tool_calls" in message and rng.random() < 0.7:
            for _ in message["tool_calls"]:
                messages.append({"role": "tool", "content": text(rng)})
    context = {"messages": messages, "add_generation_prompt": rng.random() < 0.5, "bos_token": "<s>",
               "eos_token": "</s>"}
    if rng.random() < 0.3:
        context["tools"] = TOOLS[: rng.randint(1, 2)]
    if rng.random() < 0.3:
        context["enable_thinking"] = rng.random() < 0.5
    if rng.random() < 0.1:
        context["date_string"] = "01 Jan 2025"
    return context


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--templates", nargs="+", default=[])
    parser.add_argument("--snippets", help="JSON list of {source, context}: small templates rendered one by one")
    parser.add_argument("--conversations", action="append", default=[])
    parser.add_argument("--random", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    contexts = []
    for path in args.conversations:
        with open(path, encoding="utf-8") as f:
            contexts.extend(json.load(f))
    rng = random.Random(args.seed)
    contexts.extend(random_conversation(rng) for _ in range(args.random))

    env = make_environment()
    cases = []
    for path in args.templates:
        name, source = load_template(path)
        template = env.from_string(source)
        for context in contexts:
            case = {"template": name, "path": path, "context": context}
            try:
                case["output"] = template.render(**context)
                case["ok"] = True
            except Exception as e:  # any failure must also be a failure in loom
                case["ok"] = False
                case["error"] = type(e).__name__ + ": " + str(e)
            cases.append(case)
    if args.snippets:
        with open(args.snippets, encoding="utf-8") as f:
            snippets = json.load(f)
        for snippet in snippets:
            case = {"source": snippet["source"], "context": snippet.get("context", {})}
            try:
                case["output"] = env.from_string(snippet["source"]).render(**case["context"])
                case["ok"] = True
            except Exception as e:
                case["ok"] = False
                case["error"] = type(e).__name__ + ": " + str(e)
            cases.append(case)
    json.dump({"cases": cases}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
