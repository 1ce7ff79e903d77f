#pragma once
// The generation engine of one model: accepts Requests from any thread, runs them with continuous batching on one
// worker thread, and reports each request's progress as a stream of events.
//
// Threading model.
//  - submit(), stats(), info() and everything on a RequestStream may be called from any thread.
//  - One worker thread owns the model, the KV cache, the scheduler and every Sequence after submit: none of them is
//    touched by another thread, so none of them needs a lock.
//  - The only shared state is (a) the incoming queue, guarded by `mutex_` (submit pushes, the worker moves its
//    contents into the scheduler between steps), (b) each RequestStream (its own mutex for events, an atomic cancel
//    flag the worker reads at the start of every step), and (c) the counters in EngineStats, atomics written by the
//    worker.
//  - The destructor stops the worker after its current step and finishes every unfinished request with kCancelled.
//
// Use from a CLI or an HTTP handler:
//   auto stream = engine.submit(std::move(request));   // throws loom::Error on an invalid request
//   while (auto event = stream->next(timeout)) { ... } // or stream->collect()
//   stream->cancel();                                  // e.g. when the client disconnects

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/kv_cache.h"
#include "engine/request.h"
#include "engine/request_stream.h"
#include "engine/scheduler.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace loom::engine {

struct EngineConfig {
  int64_t kv_tokens = 16384;  // cache capacity in tokens, rounded up to whole blocks
  // > 0: on a backend with device memory (Backend::memory_info), the cache instead takes this fraction of the device
  // memory free when the engine starts (after the weights are loaded), and kv_tokens is ignored. Host backends
  // ignore it.
  double gpu_memory_fraction = 0;
  int block_size = backend::kDefaultBlockSize;
  int64_t step_tokens = 512;  // token budget of one step
  int64_t max_running = 64;   // sequences batched together at most
  int64_t max_queued = 1024;  // submit() beyond this many waiting requests throws kOverloaded
};

// A snapshot of the engine's counters (for /metrics).
struct EngineStats {
  int64_t queued = 0;   // submitted, not yet running (incoming and waiting)
  int64_t running = 0;  // admitted sequences
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t prompt_tokens = 0;     // prompt tokens of every request admitted so far
  int64_t generated_tokens = 0;  // tokens sampled so far
  int64_t steps = 0;             // forward passes
  int64_t preemptions = 0;       // sequences sent back to the queue because the cache was full
  int64_t requests_finished = 0;
};

// Bytes one token of KV cache takes over every cache layer (F32 keys and values).
int64_t kv_bytes_per_token(const std::vector<backend::KvLayerShape>& layers);

// Whole blocks of `block_size` tokens that fit in fraction · free_bytes (0 when none fits).
int64_t kv_blocks_for_memory(const std::vector<backend::KvLayerShape>& layers, int block_size, int64_t free_bytes,
                             double fraction);

class Engine {
 public:
  // `tokenizer` may be null: then events carry no text and stop strings are refused.
  Engine(std::unique_ptr<model::Model> model, std::shared_ptr<const text::Tokenizer> tokenizer,
         EngineConfig config = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates the request and queues it. Throws loom::Error: kInvalidRequest (a field out of range, naming it),
  // kContextLength (the prompt does not fit the model context; both numbers in the message), kOverloaded (the queue is
  // full). A request that could never fit the KV cache, even alone, gets a stream whose only event is a kError finish
  // with error_kind kOverloaded.
  std::shared_ptr<RequestStream> submit(Request request);

  EngineStats stats() const;
  // The longest sequence (prompt + generated) a request may reach: the model context, or the KV cache capacity when
  // that is smaller. Callers cap max_tokens with it; a longer request cannot fit even alone and fails.
  int64_t max_sequence_tokens() const;
  const model::ModelInfo& info() const { return model_->info(); }
  const EngineConfig& config() const { return config_; }

 private:
  void run();
  void step();
  // Handles one sampled token; returns true when the sequence finished (it has been removed then).
  bool on_token(Sequence& seq, const SampledToken& token);
  // Releases what is left of the sequence and sends its finish event.
  void finish(std::unique_ptr<Sequence> seq, StreamEvent event);
  void finish_error(std::unique_ptr<Sequence> seq, ErrorKind kind, const std::string& message);
  void publish_stats();

  EngineConfig config_;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  std::unique_ptr<model::Model> model_;
  backend::KvCache cache_;
  std::unique_ptr<Scheduler> scheduler_;  // worker thread only

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Sequence>> incoming_;  // guarded by mutex_
  bool stopping_ = false;                            // guarded by mutex_
  std::atomic<uint64_t> next_id_{1};

  std::atomic<int64_t> queued_{0}, running_{0}, blocks_used_{0}, prompt_tokens_{0}, generated_tokens_{0}, steps_{0},
      preemptions_{0}, finished_{0};

  std::thread worker_;  // last: starts after everything above exists
};

}  // namespace loom::engine
