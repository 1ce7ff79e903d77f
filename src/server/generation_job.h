#pragma once
// One generation request in flight, as the three generation routes share it: the prompt built on the HTTP thread,
// submitted to the model's engine, and its events read back with latency metrics, cancellation on shutdown, and the
// token → text/bytes helpers the logprobs need.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/request_stream.h"
#include "prompt/chat_request.h"
#include "server/generation_params.h"
#include "server/model_registry.h"
#include "server/server_context.h"

namespace loom::server {

class GenerationJob {
 public:
  // Chat: renders and tokenizes `chat` with the model's PromptBuilder. Throws loom::Error (ParamError) on bad input,
  // kContextLength when the prompt leaves no room, kOverloaded when the engine queue is full.
  static std::shared_ptr<GenerationJob> start_chat(ServerContext& context, const std::string& model,
                                                   const prompt::ChatRequest& chat, GenerationParams params);
  // Completions: a raw prompt, text (tokenized with the model's special tokens) or ids.
  static std::shared_ptr<GenerationJob> start_text(ServerContext& context, const std::string& model,
                                                   const nlohmann::ordered_json& prompt, GenerationParams params);
  ~GenerationJob();

  // The next event; nullopt once the finish event was taken. While the server is stopping the request is cancelled.
  // `idle` is called every `idle_every` without an event; it returns false when the client is gone (cancels).
  std::optional<engine::StreamEvent> next(const std::function<bool()>& idle = {},
                                          std::chrono::milliseconds idle_every = std::chrono::seconds(10));
  void cancel() { stream_->cancel(); }

  const std::string& model_id() const { return model_id_; }
  const GenerationParams& params() const { return params_; }
  int64_t prompt_tokens() const { return prompt_tokens_; }
  const std::vector<int32_t>& prompt_ids() const { return prompt_ids_; }
  const text::Tokenizer& tokenizer() const { return model_->builder->tokenizer(); }
  int64_t created() const { return created_; }

  // The raw bytes of one token (a byte-fallback token is its byte), and its text (invalid UTF-8 replaced by the
  // JSON writer).
  std::string token_bytes(int32_t id) const;

 private:
  GenerationJob(ServerContext& context, std::shared_ptr<LoadedModel> model, GenerationParams params);
  void submit(prompt::PromptIds ids);

  ServerContext& context_;
  std::shared_ptr<LoadedModel> model_;
  std::string model_id_;
  GenerationParams params_;
  std::shared_ptr<engine::RequestStream> stream_;
  std::vector<int32_t> prompt_ids_;
  int64_t prompt_tokens_ = 0;
  int64_t created_ = 0;
  std::chrono::steady_clock::time_point arrival_;
  std::optional<std::chrono::steady_clock::time_point> last_token_;
  bool finished_ = false;
};

// "chatcmpl-…", "cmpl-…", "msg_…": the prefix and 24 random alphanumerics.
std::string random_id(const std::string& prefix);

// The chat request of an OpenAI-form body (the Anthropic route translates first): prompt::parse_chat_request with
// its refusals attributed to `messages` unless they already name a field.
prompt::ChatRequest parse_chat_messages(const nlohmann::ordered_json& body);

}  // namespace loom::server
