// Fuzzes the chat-template lexer, parser and interpreter: any input must either render or fail with loom::Error,
// within tight limits, without crashing, hanging or exhausting memory.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"
#include "text/jinja/template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
      {"role": "assistant", "content": "A cat.", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": [true, null, 1.5]}}}]},
      {"role": "tool", "content": "ok"}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<bos>", "eos_token": "<eos>"})");
  loom::text::jinja::RenderLimits limits;
  limits.max_output_bytes = 1 << 16;
  limits.max_loop_iterations = 10000;
  limits.max_call_depth = 16;
  limits.max_work = 200000;
  try {
    const auto t = loom::text::jinja::Template::parse(std::string_view(reinterpret_cast<const char*>(data), size));
    t.render(context, limits);
  } catch (const loom::Error&) {
  }
  return 0;
}
