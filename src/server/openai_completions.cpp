// POST /v1/completions, shaped as OpenAI's legacy completions: `text_completion` objects (also for stream chunks),
// choices[].text, logprobs {tokens, token_logprobs, top_logprobs, text_offset}, `data: [DONE]` at the end.

#include "server/api_error.h"
#include "server/generation_job.h"
#include "server/openai_common.h"
#include "server/routes.h"
#include "server/sse.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

struct LegacyLogprobs {
  Json tokens = Json::array(), token_logprobs = Json::array(), top_logprobs = Json::array(),
       text_offset = Json::array();

  void add(const GenerationJob& job, const engine::StreamEvent& event, size_t offset) {
    tokens.push_back(job.token_bytes(event.token));
    token_logprobs.push_back(event.logprob.value_or(0.0f));
    Json top = Json::object();
    for (const auto& alternative : event.top) top[job.token_bytes(alternative.id)] = alternative.logprob;
    top_logprobs.push_back(std::move(top));
    text_offset.push_back(offset);
  }
  Json json() const {
    return {{"tokens", tokens},
            {"token_logprobs", token_logprobs},
            {"top_logprobs", top_logprobs},
            {"text_offset", text_offset}};
  }
};

Json completion(const GenerationJob& job, const std::string& id, const std::string& text, Json logprobs, Json finish) {
  Json choice = {{"text", text}, {"index", 0}, {"logprobs", std::move(logprobs)}, {"finish_reason", std::move(finish)}};
  return {{"id", id},
          {"object", "text_completion"},
          {"created", job.created()},
          {"model", job.model_id()},
          {"system_fingerprint", system_fingerprint()},
          {"choices", Json::array({std::move(choice)})}};
}

void write_stream(const std::shared_ptr<GenerationJob>& job, const Write& write) {
  const std::string id = random_id("cmpl-");
  const bool logprobs = job->params().sampling.logprobs;
  const auto alive = [&] { return write(kSseKeepAlive); };
  const auto send = [&](Json payload) {
    if (job->params().include_usage) payload["usage"] = nullptr;
    return write(sse_data(payload));
  };
  size_t offset = 0;
  if (job->params().echo) {
    const std::string prompt = job->tokenizer().decode(job->prompt_ids(), true);
    offset = prompt.size();
    if (!send(completion(*job, id, prompt, nullptr, nullptr))) return;
  }
  while (auto event = job->next(alive)) {
    if (event->kind == engine::StreamEvent::Kind::kToken) {
      if (event->text.empty() && !logprobs) continue;
      Json lp = nullptr;
      if (logprobs) {
        LegacyLogprobs one;
        one.add(*job, *event, offset);
        lp = one.json();
      }
      offset += event->text.size();
      if (!send(completion(*job, id, event->text, std::move(lp), nullptr))) return;
      continue;
    }
    if (event->reason == engine::FinishReason::kError) {
      write(sse_data(Json::parse(openai_error_body(api_error(Error(event->error_kind, event->error))))));
      write(kSseDone);
      return;
    }
    if (!send(completion(*job, id, event->text, nullptr, finish_reason(event->reason)))) return;
    if (job->params().include_usage) {
      Json usage = completion(*job, id, "", nullptr, nullptr);
      usage["choices"] = Json::array();
      usage["usage"] = usage_json(event->usage);
      if (!write(sse_data(usage))) return;
    }
    write(kSseDone);
    return;
  }
}

Reply whole(const std::shared_ptr<GenerationJob>& job) {
  std::string text;
  if (job->params().echo) text = job->tokenizer().decode(job->prompt_ids(), true);
  LegacyLogprobs logprobs;
  engine::StreamEvent finish;
  while (auto event = job->next()) {
    if (event->kind == engine::StreamEvent::Kind::kFinish) {
      text += event->text;
      finish = std::move(*event);
      break;
    }
    if (job->params().sampling.logprobs) logprobs.add(*job, *event, text.size());
    text += event->text;
  }
  if (finish.reason == engine::FinishReason::kError) throw Error(finish.error_kind, finish.error);
  Json out =
      completion(*job, random_id("cmpl-"), text, job->params().sampling.logprobs ? logprobs.json() : Json(nullptr),
                 finish_reason(finish.reason));
  out["usage"] = usage_json(finish.usage);
  return json_reply(dump_json(out));
}

}  // namespace

Reply completions(ServerContext& context, const Json& body) {
  const std::string model = requested_model(body);
  auto params = parse_generation_params(body, Api::kCompletions);
  if (!body.contains("prompt") || body["prompt"].is_null()) fail_param("prompt", "'prompt' is required");
  auto job = GenerationJob::start_text(context, model, body["prompt"], std::move(params));
  if (!job->params().stream) return whole(job);
  Reply reply;
  reply.content_type = "text/event-stream";
  reply.stream = [job](const Write& write) { write_stream(job, write); };
  reply.on_close = [job](bool) { job->cancel(); };
  return reply;
}

}  // namespace loom::server
