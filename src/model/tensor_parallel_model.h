#pragma once
// A tensor-parallel model: N rank models, each one shard of the same snapshot on its own backend, driven as one
// model::Model. The engine sees an ordinary model: forward() takes the step and the engine's KV cache and returns the
// full logits.
//
// Threads. Rank 0 runs on the caller's thread (the engine's worker), ranks 1..N-1 on persistent worker threads, one
// per rank, each bound to its rank once (RankGroup::bind_thread: its GPU). A step is handed to every worker (the
// batch and the image rows, read-only, valid until forward returns), rank 0 runs it meanwhile, and forward returns
// when every rank has finished. Rank 0 uses the engine's cache; each other rank keeps a mirror of it (same block
// count and block size, its own model's per-rank KV shape), created on first use, so the engine's block tables are
// valid on every rank. Each rank destroys its model and caches on its own thread.
//
// Failures. A rank that throws mid-step leaves the others waiting in the next collective for it. The driver records
// the first failure, aborts the group (RankGroup::abort: NCCL's ncclCommAbort; on the CPU the in-process group's
// abort, which wakes the ranks waiting in its rendezvous, or the socket group's, which shuts its connections down), so
// that every rank's pending and later collectives fail fast, waits for all ranks, and rethrows the first failure (its
// ErrorKind kept, the rank named) on the caller. No thread is left hung. The group is then broken for good — the
// ranks' caches may disagree and an aborted NCCL communicator cannot be reused — so every later call throws
// kInternal naming the original failure; the model must be loaded again. Requests are validated by the engine
// before they reach forward(), so a failure here is an internal one (out of memory, a device error).
//
// Why threads in one process. On one host every GPU is visible to one process: a thread per GPU shares the loaded
// snapshot, the tokenizer, the engine and the HTTP server, needs no transport for the step (the workers read the
// caller's Batch in place), and NCCL initialises its communicators from one ncclUniqueId in memory.
//
// Ranks in other processes (model/remote_ranks.h; docs/TENSOR_PARALLEL_RUNTIME.md). A group can also span processes
// and hosts: rank 0 is the `loom run` / `loom serve` process (`--listen-ranks HOST:PORT`), ranks ≥ 1 are `loom
// tp-worker` processes. Then the group (RankGroup::is_local) holds rank 0 only, and `remote` drives the others: the
// driver's thread for a remote rank serialises the step (model/tp_step_codec.h; the step is encoded once per forward
// call), sends it, and waits for the worker's reply; the worker runs it on its shard with its own mirror cache. Its
// loader call waits for the worker's "loaded" instead of loading. A lost connection or an error reply is that rank's
// failure, handled as above; abort() also shuts the workers' connections down, so they stop too. Rank 0's logits stay
// the result. The destructor tells the workers to exit. run_on_ranks() needs every rank local.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/rank_group.h"
#include "model/model.h"
#include "model/remote_ranks.h"
#include "model/sharding.h"
#include "weights/snapshot.h"

namespace loom::model {

// Builds rank `rank`'s shard on `backend` (load_tensor_parallel passes load_model(snapshot, backend, sharding)).
// Called on the rank's own thread.
using RankLoader = std::function<std::unique_ptr<Model>(int rank, backend::Backend& backend, const Sharding& sharding)>;

// Collectives one rank called during the last forward() (every rank calls the same ones).
struct CollectiveCounts {
  int64_t all_reduces = 0;
  int64_t all_gathers = 0;
  int64_t broadcasts = 0;
};

class TensorParallelModel final : public Model {
 public:
  // Starts the rank threads and loads every rank's model, in parallel, each on its own thread. A load failure on any
  // rank throws here (after the threads have stopped).
  TensorParallelModel(std::unique_ptr<backend::RankGroup> group, const RankLoader& load);
  // A group whose ranks ≥ 1 run in other processes (group->is_local(r) false), driven through `remote`; rank 0 is
  // loaded with `load`, and the constructor waits for every worker's shard (their failures throw here).
  TensorParallelModel(std::unique_ptr<backend::RankGroup> group, const RankLoader& load,
                      std::unique_ptr<RemoteRanks> remote);
  ~TensorParallelModel() override;
  TensorParallelModel(const TensorParallelModel&) = delete;
  TensorParallelModel& operator=(const TensorParallelModel&) = delete;

  // Rank 0's.
  const ModelInfo& info() const override;
  backend::Backend* backend() override;

  // Runs on rank 0 (the vision tower is not sharded) and returns the embeddings in host memory, ready to be handed to
  // every rank.
  Tensor encode_image(const ImagePixels& image) override;
  Tensor forward(const StepInputs& step, backend::KvCache& cache) override;

  int ranks() const { return static_cast<int>(ranks_.size()); }
  backend::RankGroup& group() { return *group_; }
  // Runs fn(rank, communicator) on every rank at once, rank 0 on the calling thread, and returns when all are done
  // (the bench times collectives with it). Failures behave as in forward(). Throws kUnsupported when ranks run in
  // other processes.
  void run_on_ranks(const std::function<void(int rank, backend::Communicator& comm)>& fn);
  CollectiveCounts last_step_collectives() const;
  // True once a rank has failed (every later call throws).
  bool failed() const { return failed_.load(); }

 private:
  class RankCommunicator;
  struct Mirror;
  struct Rank;

  void run_job_on_ranks(const std::function<void(int rank)>& job);
  void worker_loop(int rank);
  void run_job(int rank, bool bound);
  // Records a rank's failure (the first one is the one reported) and aborts the group.
  void record_failure(int rank, std::exception_ptr error);
  void check_usable() const;
  backend::KvCache& mirror_cache(Rank& rank, const backend::KvCache& engine_cache);
  void stop_workers();

  std::unique_ptr<backend::RankGroup> group_;
  std::unique_ptr<RemoteRanks> remote_;  // ranks in other processes; null when every rank is local
  std::vector<std::unique_ptr<Rank>> ranks_;

  // The job every rank runs now; guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable job_ready_;
  std::condition_variable job_done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;

  mutable std::mutex failure_mutex_;
  std::exception_ptr first_error_;  // guarded by failure_mutex_
  int first_error_rank_ = -1;
  std::string first_error_message_;
  std::atomic<bool> failed_{false};
  uint64_t step_counter_ = 0;  // forward() calls: orders the mirror caches by last use
};

// Builds a model with one rank per member of `group`, rank r loading its shard of `snapshot` on group->backend(r)
// through load_model(snapshot, backend, Sharding{&communicator(r)}).
std::unique_ptr<TensorParallelModel> load_tensor_parallel(const weights::Snapshot& snapshot,
                                                          std::unique_ptr<backend::RankGroup> group);

}  // namespace loom::model
