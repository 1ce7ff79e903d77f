#pragma once
// Built prompt + validated parameters → engine::Request. Shared by the server's generation routes and `loom run`, so
// the CLI and the server hand the engine the same request for the same body.

#include <cstdint>

#include "engine/request.h"
#include "model/model.h"
#include "prompt/prompt_builder.h"
#include "server/generation_params.h"

namespace loom::server {

// Moves the ids, image spans (one engine image per span: a pan-and-scan image gives its original and each crop their
// own span and pixels) and M-RoPE positions out of `prompt_ids`; applies `params` with `max_tokens` as the budget.
engine::Request make_engine_request(prompt::PromptIds prompt_ids, const GenerationParams& params, int64_t max_tokens,
                                    const model::ModelInfo& info);

// Refuses a prompt that leaves no room to generate: kContextLength naming both counts.
void check_context(int64_t prompt_tokens, int64_t max_sequence_tokens);

}  // namespace loom::server
