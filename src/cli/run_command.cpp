// `loom run`: one chat request through the whole pipeline on this machine (prompt assembly, the model on the GPU
// when the binary has the CUDA backend and a GPU is present, else on the CPU, or split over several GPUs with
// --tensor-parallel, in this process or, with --listen-ranks, with `loom tp-worker` processes as the other ranks; the
// engine's sampler and stop rules),
// printing the completion as it is generated or as one JSON document.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_choice.h"
#include "core/error.h"
#include "engine/engine.h"
#include "model/registry.h"
#include "prompt/chat_request.h"
#include "prompt/prompt_builder.h"
#include "server/engine_request.h"
#include "server/generation_params.h"
#include "weights/snapshot.h"

namespace loom::cli {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct RunOptions {
  std::string model;
  std::string request;
  std::string prompt;
  std::vector<std::string> images;
  std::string media_dir;
  std::optional<int64_t> max_tokens;
  std::optional<float> temperature;
  std::optional<uint64_t> seed;
  std::optional<int> top_logprobs;
  std::string output = "text";
  int64_t kv_tokens = 8192;
  bool kv_tokens_given = false;      // else a GPU sizes the cache from gpu_memory_fraction
  double gpu_memory_fraction = 0.9;  // of the device memory free once the weights are loaded
  int image_max_tokens = 0;
  Placement placement;  // --device, --tensor-parallel, --devices
};

Json read_json_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail(ErrorKind::kNotFound, "cannot open the request file {}", path);
  const std::string data{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  auto value = Json::parse(data, nullptr, false);
  if (value.is_discarded() || !value.is_object()) fail(ErrorKind::kInvalidRequest, "{} is not a JSON object", path);
  return value;
}

// The request body: the file when given, else one user message from --prompt and --image; flags override fields.
Json request_body(const RunOptions& options) {
  Json body;
  if (!options.request.empty()) {
    body = read_json_file(options.request);
  } else {
    Json content = Json::array();
    for (const auto& image : options.images) {
      const auto path = std::filesystem::absolute(image).string();
      content.push_back({{"type", "image_url"}, {"image_url", {{"url", "file://" + path}}}});
    }
    content.push_back({{"type", "text"}, {"text", options.prompt}});
    body["messages"] = Json::array({{{"role", "user"}, {"content", content}}});
  }
  if (options.max_tokens) body["max_tokens"] = *options.max_tokens;
  if (options.temperature) body["temperature"] = *options.temperature;
  if (options.seed) body["seed"] = *options.seed;
  if (options.top_logprobs) {
    body["logprobs"] = true;
    body["top_logprobs"] = *options.top_logprobs;
  }
  return body;
}

// The server's path: the same validation and the same engine request for the same body. `loom run` decodes greedily
// unless the body asks for a temperature, and generates 256 tokens unless it asks for a budget.
engine::Request engine_request(const Json& body, prompt::PromptIds prompt_ids, const model::ModelInfo& info) {
  auto params = server::parse_generation_params(body, server::Api::kChat);
  if (!body.contains("temperature") || body["temperature"].is_null()) params.sampling.temperature = 0.0f;
  const auto prompt_tokens = static_cast<int64_t>(prompt_ids.ids.size());
  server::check_context(prompt_tokens, info.context_length);
  const int64_t budget = std::min(params.max_tokens.value_or(256), info.context_length - prompt_tokens);
  return server::make_engine_request(std::move(prompt_ids), params, budget, info);
}

double milliseconds(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void run(const RunOptions& options) {
  if (options.request.empty() && options.prompt.empty()) {
    fail(ErrorKind::kInvalidRequest, "give a request file (--request) or a prompt (--prompt)");
  }
  check_placement(options.placement, gpu_count());
  const Json body = request_body(options);
  const auto snapshot = weights::Snapshot::open(options.model);
  const auto builder = prompt::PromptBuilder::from_snapshot(snapshot);
  // Declared before the engine: its backend outlives the model the engine owns.
  server::PlacedModel placed = load_placed(snapshot, options.placement);
  auto model = std::move(placed.model);
  const auto info = model->info();

  prompt::BuildOptions build;
  build.default_image_max_tokens = options.image_max_tokens;
  build.limits.context_length = info.context_length;
  if (!options.media_dir.empty()) {
    build.sources.media.media_dir = options.media_dir;
  } else if (options.request.empty()) {
    // --image names files on the command line: the user chose them, so no folder confines them (a request file's
    // local paths still need --media-dir, as they do in the server).
    build.sources.media.media_dir = std::filesystem::path("/");
  }
  auto prompt_ids = builder.build(prompt::parse_chat_request(body), build);
  const std::vector<int32_t> prompt_tokens = prompt_ids.ids;

  engine::Engine engine(std::move(model), builder.shared_tokenizer(),
                        {.kv_tokens = options.kv_tokens,
                         .gpu_memory_fraction = options.kv_tokens_given ? 0.0 : options.gpu_memory_fraction});
  const auto start = Clock::now();
  auto stream = engine.submit(engine_request(body, std::move(prompt_ids), info));

  const bool text_mode = options.output == "text";
  Json steps = Json::array();
  std::vector<int32_t> completion;
  std::string completion_text;
  std::optional<Clock::time_point> first_token;
  engine::StreamEvent finish;
  while (auto event = stream->next()) {
    if (event->kind == engine::StreamEvent::Kind::kFinish) {
      completion_text += event->text;
      if (text_mode) std::cout << event->text << std::flush;
      finish = std::move(*event);
      break;
    }
    if (!first_token) first_token = Clock::now();
    completion.push_back(event->token);
    completion_text += event->text;
    if (text_mode) std::cout << event->text << std::flush;
    Json step = {{"token_id", event->token}};
    if (event->logprob) step["logprob"] = *event->logprob;
    Json top = Json::array();
    for (const auto& entry : event->top) top.push_back({entry.id, entry.logprob});
    step["top"] = std::move(top);
    steps.push_back(std::move(step));
  }
  const auto end = Clock::now();
  if (finish.reason == engine::FinishReason::kError) fail(finish.error_kind, "{}", finish.error);
  if (text_mode) {
    std::cout << '\n';
    return;
  }
  const double prefill_ms = milliseconds((first_token ? *first_token : end) - start);
  const double decode_ms = first_token ? milliseconds(end - *first_token) : 0.0;
  Json out;
  out["prompt_token_ids"] = prompt_tokens;
  out["completion_token_ids"] = completion;
  out["completion_text"] = completion_text;
  out["finish_reason"] = engine::finish_reason_name(finish.reason);
  out["steps"] = std::move(steps);
  out["timings"] = {{"prefill_ms", prefill_ms},
                    {"decode_ms", decode_ms},
                    {"decode_tokens_per_s",
                     completion.size() > 1 && decode_ms > 0 ? (completion.size() - 1) * 1000.0 / decode_ms : 0.0}};
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

}  // namespace

void register_run_command(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  auto* command = app.add_subcommand("run", "Generate a completion for one chat request on this machine");
  command->add_option("--model", options->model, "snapshot folder")->required()->check(CLI::ExistingDirectory);
  auto* request = command->add_option("--request", options->request, "OpenAI chat-completions body (JSON file)");
  auto* prompt = command->add_option("--prompt", options->prompt, "a user message");
  request->excludes(prompt);
  command->add_option("--image", options->images, "an image file for the --prompt message (repeatable)")->needs(prompt);
  command->add_option("--media-dir", options->media_dir, "folder local images in a request file may come from");
  command->add_option("--max-tokens", options->max_tokens, "tokens to generate at most");
  command->add_option("--temperature", options->temperature, "0 (the default) decodes greedily");
  command->add_option("--seed", options->seed, "seed of the sampler");
  command->add_option("--top-logprobs", options->top_logprobs, "report this many alternatives per token (0-20)");
  command->add_option("--output", options->output, "text (streamed) or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  command
      ->add_option("--image-max-tokens", options->image_max_tokens,
                   "Gemma 4 soft tokens per image when the request names none (default: the model's config)")
      ->check(CLI::IsMember({70, 140, 280, 560, 1120}));
  command
      ->add_option("--kv-tokens", options->kv_tokens, "KV cache capacity in tokens (on a GPU: instead of the fraction)")
      ->capture_default_str();
  command
      ->add_option("--gpu-memory-fraction", options->gpu_memory_fraction,
                   "on a GPU, the KV cache takes this fraction of the memory free after loading (CPU: ignored)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  command->add_option("--device", options->placement.device, "cuda or cpu (default: cuda when a GPU is present)")
      ->check(CLI::IsMember({"cuda", "cpu"}));
  add_tensor_parallel_options(*command, options->placement);
  add_listen_ranks_options(*command, options->placement);
  command->callback([options, command] {
    options->kv_tokens_given = command->count("--kv-tokens") > 0;
    run(*options);
  });
}

}  // namespace loom::cli
