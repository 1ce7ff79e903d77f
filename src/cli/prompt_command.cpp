// `loom prompt --model DIR --request FILE.json [--json] [--media-dir DIR] [--context N]`: shows what the model would
// be given for a chat request: the rendered prompt with every image in place (each block abbreviated), the ids and
// the image spans; --json prints {"prompt_text", "prompt_token_ids", "images": [{"start", "length", "index"}]}
// (plus "mrope_positions" and "rope_delta" for Qwen3-VL).

#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "prompt/chat_request.h"
#include "prompt/placement.h"
#include "prompt/prompt_builder.h"
#include "weights/snapshot.h"

namespace loom::cli {
namespace {

struct PromptOptions {
  std::string model;
  std::string request;
  std::string media_dir;
  int64_t context = 0;
  bool json = false;
};

nlohmann::ordered_json read_request(const std::string& path) {
  std::string data;
  if (path == "-") {
    data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream file(path, std::ios::binary);
    if (!file) fail(ErrorKind::kNotFound, "cannot open the request file {}", path);
    data.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  auto value = nlohmann::ordered_json::parse(data, nullptr, false);
  if (value.is_discarded()) fail(ErrorKind::kInvalidRequest, "{} is not valid JSON", path);
  return value;
}

std::string dump(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void run_prompt(const PromptOptions& options) {
  const auto snapshot = weights::Snapshot::open(options.model, {.lenient = true});
  const auto builder = prompt::PromptBuilder::from_snapshot(snapshot);
  const auto request = prompt::parse_chat_request(read_request(options.request));
  prompt::BuildOptions build;
  build.limits.context_length = options.context;
  if (!options.media_dir.empty()) build.sources.media.media_dir = options.media_dir;
  const auto result = builder.build(request, build);

  nlohmann::ordered_json images = nlohmann::ordered_json::array();
  for (const auto& span : result.spans) {
    images.push_back({{"start", span.start}, {"length", span.length}, {"index", span.image}});
  }
  if (options.json) {
    nlohmann::ordered_json out;
    out["prompt_text"] = result.text;
    out["prompt_token_ids"] = result.ids;
    out["images"] = std::move(images);
    if (builder.spec().mrope) {
      const size_t n = result.ids.size();
      nlohmann::ordered_json axes = nlohmann::ordered_json::array();
      for (size_t axis = 0; axis < 3; ++axis) {
        axes.push_back(
            std::vector<int64_t>(result.mrope_positions.begin() + static_cast<std::ptrdiff_t>(axis * n),
                                 result.mrope_positions.begin() + static_cast<std::ptrdiff_t>((axis + 1) * n)));
      }
      out["mrope_positions"] = std::move(axes);
      out["rope_delta"] = result.rope_delta;
    }
    std::cout << dump(out) << '\n';
    return;
  }
  std::cout << prompt::abbreviate_runs(result.text, builder.spec().soft_token) << '\n';
  std::cout << "--- " << result.ids.size() << " tokens";
  if (result.used_fallback)
    std::cout << " (the template renders no image; images placed after the last user turn opener)";
  std::cout << "\n" << dump(result.ids) << '\n';
  for (const auto& span : result.spans) {
    std::cout << "image " << span.image << ": tokens [" << span.start << ", " << span.start + span.length << ")\n";
  }
  if (builder.spec().mrope) std::cout << "rope_delta " << result.rope_delta << '\n';
}

}  // namespace

void register_prompt_command(CLI::App& app) {
  auto options = std::make_shared<PromptOptions>();
  CLI::App* command = app.add_subcommand("prompt", "Show the prompt text, ids and image spans of a chat request");
  command->add_option("--model", options->model, "model folder (config.json, tokenizer, chat template)")->required();
  command->add_option("--request", options->request, "chat-completions request JSON file, or - for stdin")->required();
  command->add_flag("--json", options->json, "print {\"prompt_text\", \"prompt_token_ids\", \"images\"}");
  command->add_option("--media-dir", options->media_dir, "folder local image paths may be read from");
  command->add_option("--context", options->context, "refuse prompts longer than this many tokens (0: no limit)");
  command->callback([options] {
    run_prompt(*options);
    exit_code = 0;
  });
}

}  // namespace loom::cli
