#include "engine/engine.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "core/log.h"

namespace loom::engine {
namespace {

backend::KvCacheConfig cache_config(model::Model& model, const EngineConfig& config) {
  const model::ModelInfo& info = model.info();
  if (config.block_size < 1 || config.kv_tokens < 1) {
    fail(ErrorKind::kInvalidRequest, "[engine] block_size and kv_tokens must be >= 1, got {} and {}", config.block_size,
         config.kv_tokens);
  }
  if (!(config.gpu_memory_fraction >= 0 && config.gpu_memory_fraction <= 1)) {
    fail(ErrorKind::kInvalidRequest, "[engine] gpu_memory_fraction must be within [0, 1], got {}",
         config.gpu_memory_fraction);
  }
  const std::optional<backend::DeviceMemoryInfo> memory =
      config.gpu_memory_fraction > 0 && model.backend() != nullptr ? model.backend()->memory_info() : std::nullopt;
  if (memory) {
    const int64_t blocks =
        kv_blocks_for_memory(info.kv, config.block_size, memory->free_bytes, config.gpu_memory_fraction);
    if (blocks < 1) {
      fail(ErrorKind::kOverloaded,
           "[engine] {:.3f} GB free device memory × gpu_memory_fraction {} holds no KV block of {} tokens ({} bytes "
           "each)",
           static_cast<double>(memory->free_bytes) / 1e9, config.gpu_memory_fraction, config.block_size,
           kv_bytes_per_token(info.kv) * config.block_size);
    }
    log::info("[engine] KV cache: {} blocks of {} tokens ({:.3f} GB) from {:.3f} GB free device memory × {}", blocks,
              config.block_size, static_cast<double>(blocks * config.block_size * kv_bytes_per_token(info.kv)) / 1e9,
              static_cast<double>(memory->free_bytes) / 1e9, config.gpu_memory_fraction);
    return {info.kv, blocks, config.block_size};
  }
  return {info.kv, (config.kv_tokens + config.block_size - 1) / config.block_size, config.block_size};
}

void validate_images(const Request& r, const model::ModelInfo& info) {
  const auto n = static_cast<int64_t>(r.prompt.size());
  int64_t previous_end = 0;
  for (const ImageInput& image : r.images) {
    if (image.length < 1 || image.start < previous_end || image.start + image.length > n) {
      fail(ErrorKind::kInvalidRequest,
           "[engine] image {} spans prompt tokens [{}, {}): spans must be non-empty, in order, not overlapping and "
           "inside the {}-token prompt",
           image.index, image.start, image.start + image.length, n);
    }
    if (image.pixels.soft_tokens != 0 && image.pixels.soft_tokens != image.length) {
      fail(ErrorKind::kInvalidRequest, "[engine] image {} has {} soft tokens but a span of {} prompt tokens",
           image.index, image.pixels.soft_tokens, image.length);
    }
    if (info.image_token_id < 0) {
      fail(ErrorKind::kUnsupported, "[engine] {} does not take images", info.architecture);
    }
    for (int64_t i = image.start; i < image.start + image.length; ++i) {
      if (r.prompt[static_cast<size_t>(i)] != info.image_token_id) {
        fail(ErrorKind::kInvalidRequest,
             "[engine] prompt token {} in the span of image {} is {}, not the image token {}", i, image.index,
             r.prompt[static_cast<size_t>(i)], info.image_token_id);
      }
    }
    previous_end = image.start + image.length;
  }
}

}  // namespace

int64_t kv_bytes_per_token(const std::vector<backend::KvLayerShape>& layers) {
  int64_t bytes = 0;
  for (const backend::KvLayerShape& layer : layers) bytes += 2 * int64_t{layer.kv_heads} * layer.head_dim * 4;
  return bytes;
}

int64_t kv_blocks_for_memory(const std::vector<backend::KvLayerShape>& layers, int block_size, int64_t free_bytes,
                             double fraction) {
  const int64_t block_bytes = kv_bytes_per_token(layers) * block_size;
  if (block_bytes <= 0 || free_bytes <= 0 || !(fraction > 0)) return 0;
  const double budget = static_cast<double>(free_bytes) * std::min(fraction, 1.0);
  // Block ids are int32 (block tables).
  return std::min<int64_t>(static_cast<int64_t>(budget / static_cast<double>(block_bytes)),
                           std::numeric_limits<int32_t>::max());
}

Engine::Engine(std::unique_ptr<model::Model> model, std::shared_ptr<const text::Tokenizer> tokenizer,
               EngineConfig config)
    : config_(config),
      tokenizer_(std::move(tokenizer)),
      model_(std::move(model)),
      cache_(cache_config(*model_, config_), model_->backend()),
      scheduler_(
          std::make_unique<Scheduler>(SchedulerConfig{config_.step_tokens, config_.max_running}, *model_, cache_)) {
  blocks_used_ = 0;
  worker_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  worker_.join();
  std::vector<std::unique_ptr<Sequence>> left = scheduler_->take_all();
  for (auto& seq : incoming_) left.push_back(std::move(seq));
  incoming_.clear();
  for (auto& seq : left) {
    StreamEvent event;
    event.kind = StreamEvent::Kind::kFinish;
    event.reason = FinishReason::kCancelled;
    event.error = "the engine shut down";
    finish(std::move(seq), std::move(event));
  }
}

std::shared_ptr<RequestStream> Engine::submit(Request request) {
  const model::ModelInfo& info = model_->info();
  const auto n = static_cast<int64_t>(request.prompt.size());
  if (n == 0) fail(ErrorKind::kInvalidRequest, "[engine] the prompt is empty");
  if (n + 1 > info.context_length) {
    fail(ErrorKind::kContextLength,
         "[engine] the prompt has {} tokens but the model context is {} tokens (at least one must be generated)", n,
         info.context_length);
  }
  if (request.max_tokens < 1) {
    fail(ErrorKind::kInvalidRequest, "[engine] max_tokens must be >= 1, got {}", request.max_tokens);
  }
  for (int32_t id : request.prompt) {
    if (id < 0 || id >= info.vocab_size) {
      fail(ErrorKind::kInvalidRequest, "[engine] prompt token {} is outside the vocabulary [0, {})", id,
           info.vocab_size);
    }
  }
  validate_images(request, info);
  if (!request.mrope_positions.empty() &&
      (info.position_axes < 2 || static_cast<int64_t>(request.mrope_positions.size()) != info.position_axes * n)) {
    fail(ErrorKind::kInvalidRequest, "[engine] mrope_positions has {} entries, expected {} axes x {} tokens",
         request.mrope_positions.size(), info.position_axes, n);
  }
  if (!tokenizer_ && std::any_of(request.stop.strings.begin(), request.stop.strings.end(),
                                 [](const std::string& s) { return !s.empty(); })) {
    fail(ErrorKind::kUnsupported, "[engine] stop strings need a tokenizer");
  }
  for (ImageInput& image : request.images) image.bidirectional = image.bidirectional || info.bidirectional_images;

  std::vector<int32_t> stop_ids = request.stop.ids;
  if (!request.stop.ignore_model_stop_ids) stop_ids.insert(stop_ids.end(), info.stop_ids.begin(), info.stop_ids.end());
  Sampler sampler(request.sampling, request.prompt, info.vocab_size);  // validates the sampling parameters
  StopMatcher stop(std::move(stop_ids), request.stop.strings);

  const uint64_t id = next_id_.fetch_add(1);
  auto stream = std::make_shared<RequestStream>(id);
  auto seq = std::make_unique<Sequence>(id, std::move(request), stream, std::move(sampler), std::move(stop));
  seq->tokens = seq->request.prompt;
  seq->prompt_length = n;
  seq->max_length = std::min(n + seq->request.max_tokens, info.context_length);
  if (tokenizer_) seq->detokenizer = std::make_unique<text::Detokenizer>(*tokenizer_, seq->request.skip_special_tokens);

  const int64_t capacity = cache_.total_blocks() * cache_.block_size();
  if (seq->max_length > capacity) {
    StreamEvent event;
    event.kind = StreamEvent::Kind::kFinish;
    event.reason = FinishReason::kError;
    event.error_kind = ErrorKind::kOverloaded;
    event.error = fmt::format(
        "[engine] the request needs up to {} tokens of KV cache ({} prompt + {} generated), the "
        "cache holds {}",
        seq->max_length, n, seq->max_length - n, capacity);
    event.usage = {n, 0};
    stream->push(std::move(event));
    return stream;
  }
  {
    std::lock_guard lock(mutex_);
    if (queued_.load() + static_cast<int64_t>(incoming_.size()) >= config_.max_queued) {
      fail(ErrorKind::kOverloaded, "[engine] {} requests are already queued (limit {})",
           queued_.load() + static_cast<int64_t>(incoming_.size()), config_.max_queued);
    }
    incoming_.push_back(std::move(seq));
  }
  wake_.notify_one();
  return stream;
}

int64_t Engine::max_sequence_tokens() const {
  return std::min(model_->info().context_length, cache_.total_blocks() * cache_.block_size());
}

EngineStats Engine::stats() const {
  EngineStats s;
  s.queued = queued_.load();
  {
    std::lock_guard lock(mutex_);
    s.queued += static_cast<int64_t>(incoming_.size());
  }
  s.running = running_.load();
  s.kv_blocks_used = blocks_used_.load();
  s.kv_blocks_total = cache_.total_blocks();
  s.prompt_tokens = prompt_tokens_.load();
  s.generated_tokens = generated_tokens_.load();
  s.steps = steps_.load();
  s.preemptions = preemptions_.load();
  s.requests_finished = finished_.load();
  return s;
}

void Engine::publish_stats() {
  queued_.store(scheduler_->queued());
  running_.store(scheduler_->running());
  blocks_used_.store(cache_.total_blocks() - cache_.free_blocks());
  preemptions_.store(scheduler_->preemptions());
}

void Engine::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !incoming_.empty() || scheduler_->has_work(); });
      if (stopping_) return;
      for (auto& seq : incoming_) {
        prompt_tokens_.fetch_add(seq->prompt_length);
        scheduler_->enqueue(std::move(seq));
      }
      incoming_.clear();
      queued_.store(scheduler_->queued());  // under the lock, so submit never sees a request in neither count
    }
    step();
  }
}

void Engine::finish(std::unique_ptr<Sequence> seq, StreamEvent event) {
  cache_.release(seq->block_table);  // no-op when the scheduler already released it
  event.kind = StreamEvent::Kind::kFinish;
  event.usage = {seq->prompt_length, seq->generated};
  finished_.fetch_add(1);
  publish_stats();  // before the event: a caller that saw the finish sees the blocks returned
  seq->stream->push(std::move(event));
}

void Engine::finish_error(std::unique_ptr<Sequence> seq, ErrorKind kind, const std::string& message) {
  StreamEvent event;
  event.reason = FinishReason::kError;
  event.error_kind = kind;
  event.error = message;
  finish(std::move(seq), std::move(event));
}

bool Engine::on_token(Sequence& seq, const SampledToken& token) {
  seq.tokens.push_back(token.id);
  ++seq.generated;
  generated_tokens_.fetch_add(1);
  StreamEvent finish_event;
  finish_event.reason = FinishReason::kStop;
  bool done = false;
  if (seq.stop.is_stop_id(token.id)) {
    // The stop id itself is not output; text still held back is.
    if (seq.detokenizer) finish_event.text = seq.stop.push(seq.detokenizer->flush());
    if (!seq.stop.stopped()) finish_event.text += seq.stop.flush();
    finish_event.stop_token = token.id;
    finish_event.stop_string = seq.stop.matched();
    done = true;
  } else {
    StreamEvent event;
    event.token = token.id;
    if (seq.request.sampling.logprobs) {
      event.logprob = token.logprob;
      event.top = token.top;
    }
    if (seq.detokenizer) event.text = seq.stop.push(seq.detokenizer->push(token.id));
    seq.stream->push(std::move(event));
    if (seq.stop.stopped()) {
      finish_event.stop_string = seq.stop.matched();
      done = true;
    } else if (static_cast<int64_t>(seq.tokens.size()) >= seq.max_length) {
      if (seq.detokenizer) finish_event.text = seq.stop.push(seq.detokenizer->flush());
      if (!seq.stop.stopped()) finish_event.text += seq.stop.flush();
      // A stop string decided only now still ends the text as a stop.
      finish_event.reason = seq.stop.stopped() ? FinishReason::kStop : FinishReason::kLength;
      finish_event.stop_string = seq.stop.matched();
      done = true;
    }
  }
  if (done) finish(scheduler_->remove(&seq), std::move(finish_event));
  return done;
}

void Engine::step() {
  for (auto& seq : scheduler_->take_cancelled()) {
    StreamEvent event;
    event.reason = FinishReason::kCancelled;
    finish(std::move(seq), std::move(event));
  }
  StepPlan plan;
  try {
    plan = scheduler_->schedule();
  } catch (const std::exception& e) {
    // A broken invariant: fail everything rather than loop on it.
    log::error("engine: scheduling failed: {}", e.what());
    for (auto& seq : scheduler_->take_all()) finish_error(std::move(seq), ErrorKind::kInternal, e.what());
    return;
  }
  for (auto& dropped : plan.dropped) finish_error(std::move(dropped.sequence), dropped.kind, dropped.message);
  publish_stats();
  if (plan.sequences.empty()) return;

  Tensor logits;
  ErrorKind error_kind = ErrorKind::kInternal;
  std::string error;
  try {
    const model::StepInputs inputs{&plan.batch, plan.images, false};
    logits = model_->forward(inputs, cache_);
    steps_.fetch_add(1);
    const auto rows = static_cast<int64_t>(plan.sequences.size());
    if (logits.dtype() != DType::kF32 || logits.rank() != 2 || logits.dim(0) != rows ||
        logits.dim(1) != model_->info().vocab_size) {
      fail(ErrorKind::kInternal, "[engine] forward returned {} {}, expected F32 [{}, {}]", dtype_name(logits.dtype()),
           shape_string(logits.shape()), rows, model_->info().vocab_size);
    }
  } catch (const Error& e) {
    error_kind = e.kind();
    error = e.what();
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    log::error("engine: forward failed: {}", error);
    for (Sequence* seq : plan.sequences) finish_error(scheduler_->remove(seq), error_kind, error);
    return;
  }

  const auto vocab = static_cast<size_t>(model_->info().vocab_size);
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    Sequence& seq = *plan.sequences[i];
    seq.computed += plan.batch.sequences[i].token_count;
    if (seq.pending() != 0) continue;  // a prefill chunk short of the end: its logits are not needed
    try {
      const SampledToken token = seq.sampler.sample(logits.span<const float>().subspan(i * vocab, vocab));
      on_token(seq, token);
    } catch (const std::exception& e) {
      finish_error(scheduler_->remove(&seq), ErrorKind::kInternal, e.what());
    }
  }
  publish_stats();
}

}  // namespace loom::engine
