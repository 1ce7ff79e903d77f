// POST /v1/messages, shaped as Anthropic's Messages API: a `message` object, or the event sequence message_start,
// content_block_start, ping, content_block_delta (text_delta)…, content_block_stop, message_delta (stop_reason,
// usage), message_stop.

#include "prompt/chat_request.h"
#include "server/anthropic_translate.h"
#include "server/api_error.h"
#include "server/generation_job.h"
#include "server/routes.h"
#include "server/sse.h"

namespace loom::server {
namespace {

using Json = nlohmann::ordered_json;

Json stop_sequence_json(const StopReason& stop) {
  return stop.stop_sequence ? Json(*stop.stop_sequence) : Json(nullptr);
}

void write_stream(const std::shared_ptr<GenerationJob>& job, const Write& write) {
  const std::string id = random_id("msg_");
  const auto alive = [&] { return write(sse_event("ping", {{"type", "ping"}})); };
  Json start = {{"type", "message_start"},
                {"message",
                 {{"id", id},
                  {"type", "message"},
                  {"role", "assistant"},
                  {"model", job->model_id()},
                  {"content", Json::array()},
                  {"stop_reason", nullptr},
                  {"stop_sequence", nullptr},
                  {"usage", {{"input_tokens", job->prompt_tokens()}, {"output_tokens", 0}}}}}};
  if (!write(sse_event("message_start", start))) return;
  if (!write(sse_event(
          "content_block_start",
          {{"type", "content_block_start"}, {"index", 0}, {"content_block", {{"type", "text"}, {"text", ""}}}}))) {
    return;
  }
  if (!write(sse_event("ping", {{"type", "ping"}}))) return;
  const auto delta = [&](const std::string& text) {
    return write(sse_event(
        "content_block_delta",
        {{"type", "content_block_delta"}, {"index", 0}, {"delta", {{"type", "text_delta"}, {"text", text}}}}));
  };
  while (auto event = job->next(alive)) {
    if (event->kind == engine::StreamEvent::Kind::kToken) {
      if (!event->text.empty() && !delta(event->text)) return;
      continue;
    }
    if (event->reason == engine::FinishReason::kError) {
      const auto error = api_error(Error(event->error_kind, event->error));
      write(sse_event("error", Json::parse(anthropic_error_body(error))));
      return;
    }
    if (!event->text.empty() && !delta(event->text)) return;
    const auto stop = anthropic_stop_reason(*event);
    if (!write(sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}}))) return;
    if (!write(sse_event("message_delta",
                         {{"type", "message_delta"},
                          {"delta", {{"stop_reason", stop.reason}, {"stop_sequence", stop_sequence_json(stop)}}},
                          {"usage", {{"output_tokens", event->usage.completion_tokens}}}}))) {
      return;
    }
    write(sse_event("message_stop", {{"type", "message_stop"}}));
    return;
  }
}

Reply whole(const std::shared_ptr<GenerationJob>& job) {
  std::string text;
  engine::StreamEvent finish;
  while (auto event = job->next()) {
    text += event->text;
    if (event->kind == engine::StreamEvent::Kind::kFinish) {
      finish = std::move(*event);
      break;
    }
  }
  if (finish.reason == engine::FinishReason::kError) throw Error(finish.error_kind, finish.error);
  const auto stop = anthropic_stop_reason(finish);
  Json out = {
      {"id", random_id("msg_")},
      {"type", "message"},
      {"role", "assistant"},
      {"model", job->model_id()},
      {"content", Json::array({{{"type", "text"}, {"text", text}}})},
      {"stop_reason", stop.reason},
      {"stop_sequence", stop_sequence_json(stop)},
      {"usage", {{"input_tokens", finish.usage.prompt_tokens}, {"output_tokens", finish.usage.completion_tokens}}}};
  return json_reply(dump_json(out));
}

}  // namespace

Reply anthropic_messages(ServerContext& context, const Json& body) {
  const std::string model = requested_model(body);
  auto params = parse_generation_params(body, Api::kMessages);
  const Json chat_body = anthropic_to_chat(body);
  const prompt::ChatRequest chat = parse_chat_messages(chat_body);
  auto job = GenerationJob::start_chat(context, model, chat, std::move(params));
  if (!job->params().stream) return whole(job);
  Reply reply;
  reply.content_type = "text/event-stream";
  reply.stream = [job](const Write& write) { write_stream(job, write); };
  reply.on_close = [job](bool) { job->cancel(); };
  return reply;
}

}  // namespace loom::server
