#pragma once
// Continuous batching: decides, before every step, which sequences run and how many of their tokens, and packs them
// into one ragged Batch.
//
// Policy.
//  - Sequences are admitted first come, first served (the queue head blocks those behind it: no starvation) when the
//    cache has free blocks for all their tokens and fewer than max_running sequences run.
//  - Running sequences that need one token (decode) grow their block table by what that token needs. When the cache
//    is full, the most recently admitted sequence is preempted: its blocks are freed and it goes back to the queue
//    head, to recompute its prompt and output later (nothing it emitted is taken back). A request is only accepted
//    when its whole length fits the cache alone (Engine::submit), so the oldest sequence always makes progress.
//  - Decode tokens come first; the rest of the step's token budget goes to prefill chunks in admission order. A
//    bidirectional image span is never split: a chunk that would end inside one stops before it; a span that starts a
//    chunk and exceeds the budget runs whole when it is the step's first prefill chunk (else it waits a step).
//  - Images are encoded (Model::encode_image) when their sequence starts prefill; the embeddings are dropped once the
//    span is in the cache. Each step receives ImageRows for the span rows its chunks hold.
// Not thread-safe: the engine's worker thread is its only user.

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "backend/batch.h"
#include "backend/kv_cache.h"
#include "core/error.h"
#include "engine/sequence.h"
#include "model/model.h"

namespace loom::engine {

struct SchedulerConfig {
  int64_t step_tokens = 512;  // token budget of one step (decode tokens count too)
  int64_t max_running = 64;   // sequences in the batch at most
};

// A sequence the scheduler had to give up on (an image failed to encode).
struct DroppedSequence {
  std::unique_ptr<Sequence> sequence;
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
};

struct StepPlan {
  backend::Batch batch;
  std::vector<model::ImageRows> images;  // rows borrow the sequences' embeddings: valid until the next schedule()
  std::vector<Sequence*> sequences;      // one per batch slice, in slice order
  std::vector<DroppedSequence> dropped;
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig config, model::Model& model, backend::KvCache& cache);

  void enqueue(std::unique_ptr<Sequence> sequence) { waiting_.push_back(std::move(sequence)); }

  // Removes every sequence whose stream asked to cancel, releasing its blocks.
  std::vector<std::unique_ptr<Sequence>> take_cancelled();
  // Removes a running sequence (finished or failed), releasing its blocks.
  std::unique_ptr<Sequence> remove(Sequence* sequence);
  // Removes everything (shutdown).
  std::vector<std::unique_ptr<Sequence>> take_all();

  StepPlan schedule();

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int64_t queued() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t running() const { return static_cast<int64_t>(running_.size()); }
  int64_t preemptions() const { return preemptions_; }

 private:
  void preempt(size_t index);
  // Grows decoding sequences' block tables, preempting from the newest when the cache is full.
  void reserve_decodes();
  void admit();
  // The end of the prefill chunk of `seq` starting at its `computed` under `budget` tokens (may return computed).
  int64_t chunk_end(const Sequence& seq, int64_t budget, bool first_prefill) const;
  void add_slice(StepPlan& plan, Sequence& seq, int64_t end);

  SchedulerConfig config_;
  model::Model& model_;
  backend::KvCache& cache_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // admission order
  int64_t preemptions_ = 0;
};

}  // namespace loom::engine
