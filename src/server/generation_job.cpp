#include "server/generation_job.h"

#include <algorithm>
#include <random>

#include "server/api_error.h"
#include "server/engine_request.h"

namespace loom::server {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

std::string random_id(const std::string& prefix) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string out = prefix;
  for (int i = 0; i < 24; ++i) out += kAlphabet[pick(rng)];
  return out;
}

GenerationJob::GenerationJob(ServerContext& context, std::shared_ptr<LoadedModel> model, GenerationParams params)
    : context_(context),
      model_(std::move(model)),
      model_id_(model_->id),
      params_(std::move(params)),
      created_(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      arrival_(Clock::now()) {}

GenerationJob::~GenerationJob() {
  // A job dropped before its finish event (client gone, write failed, exception) must not keep generating.
  if (stream_ && !finished_) stream_->cancel();
}

std::shared_ptr<GenerationJob> GenerationJob::start_chat(ServerContext& context, const std::string& model,
                                                         const prompt::ChatRequest& chat, GenerationParams params) {
  auto loaded = context.registry.acquire(model);
  std::shared_ptr<GenerationJob> job(new GenerationJob(context, loaded, std::move(params)));
  prompt::BuildOptions options;
  options.limits.max_images = context.limits.max_images;
  options.sources = context.limits.sources;
  options.default_image_max_tokens = context.limits.image_max_tokens;
  job->submit(loaded->builder->build(chat, options));
  return job;
}

std::shared_ptr<GenerationJob> GenerationJob::start_text(ServerContext& context, const std::string& model,
                                                         const Json& prompt_value, GenerationParams params) {
  auto loaded = context.registry.acquire(model);
  std::shared_ptr<GenerationJob> job(new GenerationJob(context, loaded, std::move(params)));
  prompt::PromptIds ids;
  const auto& tokenizer = loaded->builder->tokenizer();
  const Json* value = &prompt_value;
  // A batch of one is the same as its element; larger batches would be n > 1 choices.
  if (value->is_array() && value->size() == 1 && ((*value)[0].is_string() || (*value)[0].is_array())) {
    value = &(*value)[0];
  }
  if (value->is_string()) {
    ids.ids = tokenizer.encode(value->get<std::string>(), true);
  } else if (value->is_array() && !value->empty() &&
             std::all_of(value->begin(), value->end(), [](const Json& x) { return x.is_number_integer(); })) {
    const auto vocab = static_cast<int64_t>(loaded->engine->info().vocab_size);
    for (size_t i = 0; i < value->size(); ++i) {
      const int64_t id = (*value)[i].get<int64_t>();
      if (id < 0 || id >= vocab) fail_param("prompt", "'prompt[{}]' is {}: token ids are 0 to {}", i, id, vocab - 1);
      ids.ids.push_back(static_cast<int32_t>(id));
    }
  } else if (value->is_array() && value->size() > 1) {
    throw ParamError(ErrorKind::kUnsupported, "prompt", "a batch of several prompts is not supported: send one");
  } else {
    fail_param("prompt", "'prompt' must be a string or an array of token ids");
  }
  if (ids.ids.empty()) fail_param("prompt", "'prompt' must not be empty");
  job->submit(std::move(ids));
  return job;
}

void GenerationJob::submit(prompt::PromptIds ids) {
  prompt_tokens_ = static_cast<int64_t>(ids.ids.size());
  check_context(prompt_tokens_, model_->max_sequence_tokens);
  prompt_ids_ = ids.ids;
  const int64_t budget =
      effective_max_tokens(params_, prompt_tokens_, model_->max_sequence_tokens, context_.limits.max_tokens_cap);
  auto request = make_engine_request(std::move(ids), params_, budget, model_->engine->info());
  stream_ = model_->engine->submit(std::move(request));
}

std::optional<engine::StreamEvent> GenerationJob::next(const std::function<bool()>& idle,
                                                       std::chrono::milliseconds idle_every) {
  if (finished_) return std::nullopt;
  auto waited = std::chrono::milliseconds(0);
  constexpr auto kPoll = std::chrono::milliseconds(50);
  for (;;) {
    if (context_.stopping.load()) stream_->cancel();
    auto event = stream_->next(kPoll);
    if (!event) {
      waited += kPoll;
      if (idle && waited >= idle_every) {
        waited = std::chrono::milliseconds(0);
        if (!idle()) stream_->cancel();
      }
      continue;
    }
    const auto now = Clock::now();
    if (event->kind == engine::StreamEvent::Kind::kToken) {
      if (!last_token_) {
        context_.metrics.observe_ttft(std::chrono::duration<double>(now - arrival_).count());
      } else {
        context_.metrics.observe_inter_token(std::chrono::duration<double>(now - *last_token_).count());
      }
      last_token_ = now;
    } else {
      finished_ = true;
      context_.metrics.observe_request(std::chrono::duration<double>(now - arrival_).count());
      context_.metrics.add_tokens(event->usage.prompt_tokens, event->usage.completion_tokens);
    }
    return event;
  }
}

std::string GenerationJob::token_bytes(int32_t id) const {
  const auto& tokenizer = model_->builder->tokenizer();
  if (const auto piece = tokenizer.id_to_token(id)) {
    // Byte-fallback pieces <0xNN> stand for one raw byte.
    if (piece->size() == 6 && piece->starts_with("<0x") && piece->back() == '>') {
      const auto byte = std::stoi(piece->substr(3, 2), nullptr, 16);
      return std::string(1, static_cast<char>(byte));
    }
  }
  const int32_t ids[1] = {id};
  return tokenizer.decode(ids, false);
}

prompt::ChatRequest parse_chat_messages(const nlohmann::ordered_json& body) {
  try {
    return prompt::parse_chat_request(body);
  } catch (const ParamError&) {
    throw;
  } catch (const Error& e) {
    throw ParamError(e.kind(), "messages", e.what());
  }
}

}  // namespace loom::server
