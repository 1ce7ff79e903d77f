// `loom run`: one chat request through the whole pipeline on this machine (prompt assembly, the model on the GPU
// when the binary has the CUDA backend and a GPU is present, else on the CPU, the engine's sampler and stop rules),
// printing the completion as it is generated or as one JSON document.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#ifdef LOOM_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "cli/commands.h"
#include "core/error.h"
#include "engine/engine.h"
#include "model/registry.h"
#include "prompt/chat_request.h"
#include "prompt/prompt_builder.h"
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
  std::string device;  // "cuda", "cpu" or empty: cuda when a GPU is present
};

// The backend for --device; it outlives the engine, which outlives nothing beyond run().
backend::Backend& choose_backend(const std::string& device) {
  static backend::cpu::CpuBackend cpu;
#ifdef LOOM_HAS_CUDA
  if (device == "cuda" || (device.empty() && backend::cuda::device_count() > 0)) {
    static backend::cuda::CudaBackend gpu(0);  // throws kUnsupported naming the missing GPU
    return gpu;
  }
#else
  if (device == "cuda") fail(ErrorKind::kUnsupported, "this loom binary was built without the CUDA backend");
#endif
  return cpu;
}

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

template <typename T>
std::optional<T> optional_field(const Json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(ErrorKind::kInvalidRequest, "'{}' has the wrong type", name);
  }
}

engine::Request engine_request(const Json& body, prompt::PromptIds prompt_ids, bool bidirectional_images) {
  engine::Request request;
  request.prompt = std::move(prompt_ids.ids);
  for (const auto& span : prompt_ids.spans) {
    if (static_cast<size_t>(span.image) >= prompt_ids.images.size()) fail(ErrorKind::kInternal, "span without image");
    request.images.push_back({.start = span.start,
                              .length = span.length,
                              .index = span.image,
                              .pixels = prompt_ids.images[static_cast<size_t>(span.image)],
                              .bidirectional = bidirectional_images});
  }
  if (prompt_ids.spans.size() != prompt_ids.images.size()) {
    fail(ErrorKind::kUnsupported, "pan-and-scan crops are not supported by `loom run` yet");
  }
  request.mrope_positions.assign(prompt_ids.mrope_positions.begin(), prompt_ids.mrope_positions.end());
  request.rope_delta = prompt_ids.rope_delta;

  auto& sampling = request.sampling;
  sampling.temperature = optional_field<float>(body, "temperature").value_or(0.0f);
  sampling.top_p = optional_field<float>(body, "top_p").value_or(1.0f);
  sampling.top_k = optional_field<int>(body, "top_k").value_or(0);
  sampling.min_p = optional_field<float>(body, "min_p").value_or(0.0f);
  sampling.repetition_penalty = optional_field<float>(body, "repetition_penalty").value_or(1.0f);
  sampling.presence_penalty = optional_field<float>(body, "presence_penalty").value_or(0.0f);
  sampling.frequency_penalty = optional_field<float>(body, "frequency_penalty").value_or(0.0f);
  sampling.seed = optional_field<uint64_t>(body, "seed");
  sampling.logprobs = optional_field<bool>(body, "logprobs").value_or(false);
  sampling.top_logprobs = optional_field<int>(body, "top_logprobs").value_or(0);
  request.max_tokens = optional_field<int64_t>(body, "max_completion_tokens")
                           .value_or(optional_field<int64_t>(body, "max_tokens").value_or(256));
  if (const auto stop = body.find("stop"); stop != body.end() && !stop->is_null()) {
    if (stop->is_string()) {
      request.stop.strings.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const auto& s : *stop) {
        if (!s.is_string()) fail(ErrorKind::kInvalidRequest, "'stop' must be a string or an array of strings");
        request.stop.strings.push_back(s.get<std::string>());
      }
    } else {
      fail(ErrorKind::kInvalidRequest, "'stop' must be a string or an array of strings");
    }
  }
  return request;
}

double milliseconds(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void run(const RunOptions& options) {
  if (options.request.empty() && options.prompt.empty()) {
    fail(ErrorKind::kInvalidRequest, "give a request file (--request) or a prompt (--prompt)");
  }
  const Json body = request_body(options);
  const auto snapshot = weights::Snapshot::open(options.model);
  const auto builder = prompt::PromptBuilder::from_snapshot(snapshot);
  auto model = model::load_model(snapshot, choose_backend(options.device));
  const auto info = model->info();

  prompt::BuildOptions build;
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

  engine::Engine engine(std::move(model), builder.shared_tokenizer(), {.kv_tokens = options.kv_tokens});
  const auto start = Clock::now();
  auto stream = engine.submit(engine_request(body, std::move(prompt_ids), info.bidirectional_images));

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
  command->add_option("--kv-tokens", options->kv_tokens, "KV cache capacity in tokens")->capture_default_str();
  command->add_option("--device", options->device, "cuda or cpu (default: cuda when a GPU is present)")
      ->check(CLI::IsMember({"cuda", "cpu"}));
  command->callback([options] { run(*options); });
}

}  // namespace loom::cli
