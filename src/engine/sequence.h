#pragma once
// The engine's working state for one request, owned by the worker thread from submit to finish.
//
// `tokens` holds the prompt followed by everything generated. `computed` of them have their keys and values in the
// cache; each step feeds tokens [computed, computed + n) and, when that reaches the end of `tokens`, samples the next
// one. Prefill, decode and recomputation after preemption (computed reset to 0) are all the same rule.

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "engine/request.h"
#include "engine/request_stream.h"
#include "engine/sampler.h"
#include "engine/stop_matcher.h"
#include "text/detokenizer.h"

namespace loom::engine {

struct Sequence {
  Sequence(uint64_t id_, Request request_, std::shared_ptr<RequestStream> stream_, Sampler sampler_, StopMatcher stop_)
      : id(id_),
        request(std::move(request_)),
        stream(std::move(stream_)),
        sampler(std::move(sampler_)),
        stop(std::move(stop_)) {}

  uint64_t id;
  Request request;
  std::shared_ptr<RequestStream> stream;
  Sampler sampler;
  StopMatcher stop;
  std::unique_ptr<text::Detokenizer> detokenizer;  // null without a tokenizer

  std::vector<int32_t> tokens;
  int64_t prompt_length = 0;
  int64_t max_length = 0;  // tokens.size() at which generation ends with "length"
  int64_t computed = 0;
  int64_t generated = 0;
  std::vector<int32_t> block_table;
  std::vector<Tensor> embeddings;  // per image: [length, hidden] while its span is being prefilled, else empty
  int64_t preemptions = 0;

  int64_t pending() const { return static_cast<int64_t>(tokens.size()) - computed; }

  // RoPE position of token `index` on `axis` (see Request::mrope_positions).
  int32_t position(int64_t index, int axis) const {
    if (index < prompt_length && !request.mrope_positions.empty()) {  // validated: [axes, prompt_length]
      return request.mrope_positions[static_cast<size_t>(axis * prompt_length + index)];
    }
    return static_cast<int32_t>(index >= prompt_length ? index + request.rope_delta : index);
  }
};

}  // namespace loom::engine
