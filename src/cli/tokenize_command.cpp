// `loom tokenize --model DIR [--no-special] [--json | --jsonl] TEXT|-`: prints the ids and token strings of a text,
// or, with --jsonl, tokenizes one JSON string per input line (a corpus) into one {"ids", "tokens"} object per line.

#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "text/tokenizer.h"

namespace loom::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  bool no_special = false;
  bool json = false;
  bool jsonl = false;
};

nlohmann::json ids_and_tokens(const text::Tokenizer& tokenizer, std::string_view input, bool add_special) {
  const auto ids = tokenizer.encode(input, add_special);
  nlohmann::json tokens = nlohmann::json::array();
  for (const auto id : ids) tokens.push_back(tokenizer.id_to_token(id).value_or(""));
  return {{"ids", ids}, {"tokens", std::move(tokens)}};
}

std::string dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void run_tokenize(const TokenizeOptions& options) {
  const auto tokenizer = text::Tokenizer::load(options.model);
  const bool add_special = !options.no_special;
  if (options.jsonl) {
    std::string line;
    for (std::size_t number = 1; std::getline(std::cin, line); ++number) {
      if (line.empty()) continue;
      const auto value = nlohmann::json::parse(line, nullptr, false);
      if (!value.is_string()) fail(ErrorKind::kInvalidRequest, "stdin line {}: expected one JSON string", number);
      std::cout << dump(ids_and_tokens(tokenizer, value.get<std::string>(), add_special)) << '\n';
    }
    return;
  }
  std::string input = options.text;
  if (input == "-") input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  const auto result = ids_and_tokens(tokenizer, input, add_special);
  if (options.json) {
    std::cout << dump(result) << '\n';
    return;
  }
  for (std::size_t i = 0; i < result["ids"].size(); ++i) {
    std::cout << result["ids"][i].get<std::int32_t>() << '\t' << dump(result["tokens"][i]) << '\n';
  }
}

}  // namespace

void register_tokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* command = app.add_subcommand("tokenize", "Print the token ids and pieces of a text");
  command->add_option("--model", options->model, "model folder with tokenizer.json")->required();
  command->add_flag("--no-special", options->no_special, "do not add the tokenizer's special tokens (e.g. <bos>)");
  command->add_flag("--json", options->json, "print {\"ids\": [...], \"tokens\": [...]}");
  command->add_flag("--jsonl", options->jsonl, "read one JSON string per stdin line, write one JSON object per line");
  command->add_option("text", options->text, "the text, or - to read stdin");
  command->callback([options, command] {
    if (!options->jsonl && command->count("text") == 0) {
      throw CLI::ValidationError("text", "give a TEXT, - for stdin, or --jsonl");
    }
    run_tokenize(*options);
    exit_code = 0;
  });
}

}  // namespace loom::cli
