#pragma once
// Runs a family's forward step and returns its logits in host memory. On a backend that records step graphs (CUDA),
// decode steps are recorded once per shape and replayed from then on: the family's host code and its several hundred
// kernel launches run once per shape instead of once per token.
//
// Every step binds its batch to the backend first (Backend::bind_step), so the ops read the step's ids, positions and
// block tables from one upload. A step is recorded only when it is a plain decode step — every sequence adds one
// token, no image rows, logits for the last rows only — and the family says the step's ops depend on nothing but the
// bound batch (`recordable`: not for tensor-parallel ranks, whose collectives run outside the recording, nor when ids
// had to be rewritten on the host). Graphs are keyed by what fixes a step's ops and the layout of the bound upload:
// the sequence count, the block-table capacity, the number of bidirectional spans and the cache. The first step of a
// key runs eagerly (it sizes the scratch buffers and uploads constant tables), the second is recorded and run from its
// graph, the rest replay it. A recording that fails (an op that needs an upload or a host read) leaves that key eager
// for good; a memory_epoch() change (a buffer the graph points into may have been replaced) drops the graph and
// starts the key over.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <tuple>

#include "backend/backend.h"
#include "model/model.h"

namespace loom::model {

class StepRunner {
 public:
  // `body` issues the step's ops and returns its logits in backend or host memory ([sequences, vocab] or
  // [tokens, vocab], F32); it may be called more than once for one step (a failed recording is re-run eagerly), and
  // does nothing but issue ops (no host state that must change exactly once per step).
  Tensor run(backend::Backend& backend, const StepInputs& step, const backend::KvCache& cache, bool recordable,
             const std::function<Tensor()>& body);

  const StepCounts& counts() const { return counts_; }

 private:
  struct Entry {
    std::unique_ptr<backend::StepGraph> graph;
    Tensor logits;        // where the graph leaves the logits (a view of a scratch buffer)
    uint64_t epoch = 0;   // memory_epoch() the graph was recorded under
    bool warmed = false;  // an eager step of this key ran under `epoch`
    bool refused = false;
  };
  // Sequences, block-table capacity, bidirectional spans (earlier images; their values are in the bound upload), cache.
  using Key = std::tuple<int64_t, int64_t, int64_t, const void*>;

  Tensor run_eager(backend::Backend& backend, const std::function<Tensor()>& body);

  std::map<Key, Entry> graphs_;
  StepCounts counts_;
};

// True when `step` is a plain decode step: one new token per sequence (row s is sequence s), no image rows, last-row
// logits.
bool is_decode_step(const StepInputs& step);

}  // namespace loom::model
