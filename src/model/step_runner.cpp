#include "model/step_runner.h"

#include "core/error.h"
#include "core/log.h"

namespace loom::model {
namespace {

// Holds the step bound to the backend for the duration of one run.
class BoundStep {
 public:
  BoundStep(backend::Backend& backend, const backend::Batch& batch)
      : backend_(backend), capacity_(backend.bind_step(&batch)) {}
  ~BoundStep() { backend_.bind_step(nullptr); }
  BoundStep(const BoundStep&) = delete;
  BoundStep& operator=(const BoundStep&) = delete;
  int64_t table_capacity() const { return capacity_; }

 private:
  backend::Backend& backend_;
  int64_t capacity_;
};

Tensor on_host(backend::Backend& backend, const Tensor& t) {
  return t.device().kind == DeviceKind::kCpu ? t : backend.to_host(t);
}

// A cap on the graphs one model keeps: each decode batch size and table capacity gets its own, and long-running servers
// see many; past the cap they are all dropped and re-recorded as steps come (a recording costs about one step).
constexpr size_t kMaxGraphs = 256;

}  // namespace

bool is_decode_step(const StepInputs& step) {
  if (step.batch == nullptr || step.all_logits || !step.images.empty()) return false;
  const backend::Batch& batch = *step.batch;
  if (batch.tokens() != static_cast<int64_t>(batch.sequences.size())) return false;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const backend::SequenceSlice& seq = batch.sequences[s];
    if (seq.token_count != 1 || seq.token_offset != static_cast<int64_t>(s)) return false;
  }
  return true;
}

Tensor StepRunner::run_eager(backend::Backend& backend, const std::function<Tensor()>& body) {
  ++counts_.eager;
  return on_host(backend, body());
}

Tensor StepRunner::run(backend::Backend& backend, const StepInputs& step, const backend::KvCache& cache,
                       bool recordable, const std::function<Tensor()>& body) {
  if (step.batch == nullptr) fail(ErrorKind::kInternal, "[step] no batch");
  const BoundStep bound(backend, *step.batch);
  if (!recordable || !backend.can_capture() || !is_decode_step(step)) return run_eager(backend, body);

  if (graphs_.size() >= kMaxGraphs) graphs_.clear();
  int64_t spans = 0;
  for (const backend::SequenceSlice& seq : step.batch->sequences) {
    spans += static_cast<int64_t>(seq.bidirectional_spans.size());
  }
  const Key key{static_cast<int64_t>(step.batch->sequences.size()), bound.table_capacity(), spans, &cache};
  Entry& entry = graphs_[key];
  if (entry.refused) return run_eager(backend, body);
  const uint64_t epoch = backend.memory_epoch();
  if (entry.graph && entry.epoch == epoch) {
    backend.replay(*entry.graph);
    ++counts_.replayed;
    return on_host(backend, entry.logits);
  }
  entry.graph.reset();
  if (!entry.warmed || entry.epoch != epoch) {
    Tensor logits = run_eager(backend, body);
    entry.warmed = true;
    entry.epoch = backend.memory_epoch();  // after the step: what it allocated is in place for the recording
    return logits;
  }

  Tensor logits;
  std::unique_ptr<backend::StepGraph> graph;
  try {
    backend.begin_capture();
    logits = body();
    graph = backend.end_capture();
  } catch (const Error& e) {
    backend.abort_capture();
    if (e.kind() != ErrorKind::kInternal) throw;  // a real failure of the step, not of the recording
    entry.refused = true;
    ++counts_.refused;
    log::debug("decode steps of {} sequences run without a graph: {}", std::get<0>(key), e.what());
    return run_eager(backend, body);
  }
  if (backend.memory_epoch() != epoch || logits.device().kind == DeviceKind::kCpu) {
    // The recording allocated (a buffer grew) or its logits were not left on the device: nothing of it ran, so run
    // the step eagerly and record again on a later step.
    entry.epoch = backend.memory_epoch();
    return run_eager(backend, body);
  }
  entry.graph = std::move(graph);
  entry.logits = logits;
  entry.epoch = epoch;
  backend.replay(*entry.graph);
  ++counts_.recorded;
  return on_host(backend, entry.logits);
}

}  // namespace loom::model
