// POST /v1/chat/completions, shaped as OpenAI's: a `chat.completion` object, or `chat.completion.chunk` events whose
// first delta carries the role, then content deltas, a last chunk with finish_reason, an optional usage chunk
// (stream_options.include_usage) and `data: [DONE]`.

#include "engine/request_stream.h"
#include "prompt/chat_request.h"
#include "server/api_error.h"
#include "server/generation_job.h"
#include "server/openai_common.h"
#include "server/routes.h"
#include "server/sse.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

Json logprob_entry(const GenerationJob& job, const engine::StreamEvent& event) {
  const std::string bytes = job.token_bytes(event.token);
  Json entry = {{"token", bytes}, {"logprob", event.logprob.value_or(0.0f)}, {"bytes", byte_array(bytes)}};
  Json top = Json::array();
  for (const auto& alternative : event.top) {
    const std::string alt = job.token_bytes(alternative.id);
    top.push_back({{"token", alt}, {"logprob", alternative.logprob}, {"bytes", byte_array(alt)}});
  }
  entry["top_logprobs"] = std::move(top);
  return entry;
}

Json chunk(const GenerationJob& job, const std::string& id, Json delta, Json logprobs, Json finish_reason) {
  Json choice = {{"index", 0},
                 {"delta", std::move(delta)},
                 {"logprobs", std::move(logprobs)},
                 {"finish_reason", std::move(finish_reason)}};
  Json out = {{"id", id},
              {"object", "chat.completion.chunk"},
              {"created", job.created()},
              {"model", job.model_id()},
              {"system_fingerprint", system_fingerprint()},
              {"choices", Json::array({std::move(choice)})}};
  if (job.params().include_usage) out["usage"] = nullptr;
  return out;
}

void write_stream(const std::shared_ptr<GenerationJob>& job, const Write& write) {
  const std::string id = random_id("chatcmpl-");
  const bool logprobs = job->params().sampling.logprobs;
  const auto alive = [&] { return write(kSseKeepAlive); };
  if (!write(sse_data(chunk(*job, id, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr)))) return;
  while (auto event = job->next(alive)) {
    if (event->kind == engine::StreamEvent::Kind::kToken) {
      if (event->text.empty() && !logprobs) continue;
      Json lp = logprobs ? Json{{"content", Json::array({logprob_entry(*job, *event)})}} : Json(nullptr);
      if (!write(sse_data(chunk(*job, id, {{"content", event->text}}, std::move(lp), nullptr)))) return;
      continue;
    }
    if (event->reason == engine::FinishReason::kError) {
      write(sse_data(Json::parse(openai_error_body(api_error(Error(event->error_kind, event->error))))));
      write(kSseDone);
      return;
    }
    if (!event->text.empty()) {
      if (!write(sse_data(chunk(*job, id, {{"content", event->text}}, nullptr, nullptr)))) return;
    }
    if (!write(sse_data(chunk(*job, id, Json::object(), nullptr, finish_reason(event->reason))))) return;
    if (job->params().include_usage) {
      Json usage_chunk = {{"id", id},
                          {"object", "chat.completion.chunk"},
                          {"created", job->created()},
                          {"model", job->model_id()},
                          {"system_fingerprint", system_fingerprint()},
                          {"choices", Json::array()},
                          {"usage", usage_json(event->usage)}};
      if (!write(sse_data(usage_chunk))) return;
    }
    write(kSseDone);
    return;
  }
}

Reply whole(const std::shared_ptr<GenerationJob>& job) {
  std::string text;
  Json logprobs = Json::array();
  engine::StreamEvent finish;
  while (auto event = job->next()) {
    text += event->text;
    if (event->kind == engine::StreamEvent::Kind::kFinish) {
      finish = std::move(*event);
      break;
    }
    if (job->params().sampling.logprobs) logprobs.push_back(logprob_entry(*job, *event));
  }
  if (finish.reason == engine::FinishReason::kError) throw Error(finish.error_kind, finish.error);
  Json message = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
  Json choice = {{"index", 0},
                 {"message", std::move(message)},
                 {"logprobs", job->params().sampling.logprobs ? Json{{"content", std::move(logprobs)}} : Json(nullptr)},
                 {"finish_reason", finish_reason(finish.reason)}};
  Json out = {{"id", random_id("chatcmpl-")},
              {"object", "chat.completion"},
              {"created", job->created()},
              {"model", job->model_id()},
              {"system_fingerprint", system_fingerprint()},
              {"choices", Json::array({std::move(choice)})},
              {"usage", usage_json(finish.usage)}};
  return json_reply(dump_json(out));
}

}  // namespace

Reply chat_completions(ServerContext& context, const Json& body) {
  const std::string model = requested_model(body);
  auto params = parse_generation_params(body, Api::kChat);
  if (!body.contains("messages")) fail_param("messages", "'messages' is required");
  if (!body["messages"].is_array() || body["messages"].empty()) {
    fail_param("messages", "'messages' must be a non-empty array");
  }
  const prompt::ChatRequest chat = parse_chat_messages(body);
  auto job = GenerationJob::start_chat(context, model, chat, std::move(params));
  if (!job->params().stream) return whole(job);
  Reply reply;
  reply.content_type = "text/event-stream";
  reply.stream = [job](const Write& write) { write_stream(job, write); };
  reply.on_close = [job](bool) { job->cancel(); };
  return reply;
}

}  // namespace loom::server
