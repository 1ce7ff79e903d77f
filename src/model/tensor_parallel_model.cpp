#include "model/tensor_parallel_model.h"

#include <algorithm>

#include "core/error.h"
#include "model/registry.h"

namespace loom::model {

// What each rank model holds as its communicator: the group's, counting the collectives and refusing new ones once
// the group has failed (so a rank that has not reached the collective yet stops there instead of waiting).
class TensorParallelModel::RankCommunicator final : public backend::Communicator {
 public:
  RankCommunicator(backend::Communicator& inner, const std::atomic<bool>& failed) : inner_(inner), failed_(failed) {}

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  void all_reduce_sum(Tensor& x) override {
    check();
    all_reduces.fetch_add(1, std::memory_order_relaxed);
    inner_.all_reduce_sum(x);
  }
  void all_gather_columns(const Tensor& x, Tensor& out) override {
    check();
    all_gathers.fetch_add(1, std::memory_order_relaxed);
    inner_.all_gather_columns(x, out);
  }
  void broadcast(Tensor& x, int root) override {
    check();
    broadcasts.fetch_add(1, std::memory_order_relaxed);
    inner_.broadcast(x, root);
  }
  void reset_counts() {
    all_reduces = 0;
    all_gathers = 0;
    broadcasts = 0;
  }

  std::atomic<int64_t> all_reduces{0}, all_gathers{0}, broadcasts{0};

 private:
  void check() const {
    if (failed_.load()) {
      fail(ErrorKind::kInternal, "[tensor-parallel] rank {}: collective refused, another rank failed", rank());
    }
  }

  backend::Communicator& inner_;
  const std::atomic<bool>& failed_;
};

// A rank ≥ 1's copy of one engine cache: same blocks and block size, the rank's own KV shape.
struct TensorParallelModel::Mirror {
  const backend::KvCache* engine_cache = nullptr;
  int64_t blocks = 0;
  int block_size = 0;
  uint64_t last_used = 0;
  std::unique_ptr<backend::KvCache> cache;
};

struct TensorParallelModel::Rank {
  bool remote = false;                     // runs in a worker process, driven through remote_
  TpLoaded remote_info;                    // what a remote rank's shard reported
  std::unique_ptr<RankCommunicator> comm;  // local ranks
  std::unique_ptr<Model> model;
  std::vector<Mirror> mirrors;  // ranks ≥ 1; touched by the rank's thread only
  std::thread thread;           // ranks ≥ 1
};

namespace {

// Mirrors kept per rank: the engine uses one cache, the bench a warm-up cache and then the engine's.
constexpr size_t kMaxMirrors = 4;

}  // namespace

TensorParallelModel::TensorParallelModel(std::unique_ptr<backend::RankGroup> group, const RankLoader& load)
    : TensorParallelModel(std::move(group), load, nullptr) {}

TensorParallelModel::TensorParallelModel(std::unique_ptr<backend::RankGroup> group, const RankLoader& load,
                                         std::unique_ptr<RemoteRanks> remote)
    : group_(std::move(group)), remote_(std::move(remote)) {
  if (!group_ || group_->size() < 1) fail(ErrorKind::kInternal, "[tensor-parallel] the group has no ranks");
  const int n = group_->size();
  if (!group_->is_local(0)) fail(ErrorKind::kInternal, "[tensor-parallel] rank 0 must run in this process");
  for (int r = 0; r < n; ++r) {
    auto rank = std::make_unique<Rank>();
    if (!group_->is_local(r)) {
      if (!remote_) fail(ErrorKind::kInternal, "[tensor-parallel] rank {} runs in another process, with no link", r);
      rank->remote = true;
      ranks_.push_back(std::move(rank));
      continue;
    }
    rank->comm = std::make_unique<RankCommunicator>(group_->communicator(r), failed_);
    if (rank->comm->rank() != r || rank->comm->size() != n) {
      fail(ErrorKind::kInternal, "[tensor-parallel] communicator {} says rank {} of {}, expected rank {} of {}", r,
           rank->comm->rank(), rank->comm->size(), r, n);
    }
    ranks_.push_back(std::move(rank));
  }
  for (int r = 1; r < n; ++r) ranks_[static_cast<size_t>(r)]->thread = std::thread([this, r] { worker_loop(r); });
  try {
    run_job_on_ranks([&](int r) {
      Rank& rank = *ranks_[static_cast<size_t>(r)];
      if (rank.remote) {
        rank.remote_info = remote_->wait_loaded(r);
        return;
      }
      rank.model = load(r, group_->backend(r), Sharding{rank.comm.get()});
      if (!rank.model) fail(ErrorKind::kInternal, "[tensor-parallel] rank {}: no model", r);
    });
    const ModelInfo& first = ranks_[0]->model->info();
    for (int r = 1; r < n; ++r) {
      const Rank& rank = *ranks_[static_cast<size_t>(r)];
      const int64_t vocab = rank.remote ? rank.remote_info.vocab_size : rank.model->info().vocab_size;
      const auto kv_layers =
          rank.remote ? rank.remote_info.kv_layers : static_cast<int64_t>(rank.model->info().kv.size());
      if (vocab != first.vocab_size || kv_layers != static_cast<int64_t>(first.kv.size())) {
        fail(ErrorKind::kInternal,
             "[tensor-parallel] rank {} loaded a model with vocab {} and {} KV layers; rank 0: {}"
             " and {}",
             r, vocab, kv_layers, first.vocab_size, first.kv.size());
      }
    }
  } catch (...) {
    if (remote_) remote_->abort();
    stop_workers();
    ranks_[0]->model.reset();
    throw;
  }
}

TensorParallelModel::~TensorParallelModel() {
  stop_workers();
  // The workers exit when told to, or when their connection ends (after a failure, abort() has ended it).
  if (remote_ && !failed_.load()) remote_->shutdown();
  try {
    group_->bind_thread(0);
  } catch (...) {
    // Freeing memory needs no current device; only new work would.
  }
  ranks_[0]->model.reset();
}

void TensorParallelModel::stop_workers() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  job_ready_.notify_all();
  for (auto& rank : ranks_) {
    if (rank->thread.joinable()) rank->thread.join();
  }
}

void TensorParallelModel::worker_loop(int r) {
  Rank& rank = *ranks_[static_cast<size_t>(r)];
  bool bound = rank.remote;  // a remote rank's thread only talks to its worker
  try {
    if (!bound) group_->bind_thread(r);
    bound = true;
  } catch (...) {
    record_failure(r, std::current_exception());
  }
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      job_ready_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) break;
      seen = generation_;
    }
    run_job(r, bound);
  }
  // The rank's device memory is released on the thread bound to its device.
  rank.mirrors.clear();
  rank.model.reset();
}

void TensorParallelModel::run_job(int r, bool bound) {
  const std::function<void(int)>* job = nullptr;
  {
    std::lock_guard lock(mutex_);
    job = job_;
  }
  try {
    if (!bound) fail(ErrorKind::kInternal, "[tensor-parallel] rank {}: its thread could not be bound to its device", r);
    (*job)(r);
  } catch (...) {
    record_failure(r, std::current_exception());
  }
  std::lock_guard lock(mutex_);
  if (--pending_ == 0) job_done_.notify_all();
}

void TensorParallelModel::record_failure(int r, std::exception_ptr error) {
  {
    std::lock_guard lock(failure_mutex_);
    if (!first_error_) {
      first_error_ = error;
      first_error_rank_ = r;
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        first_error_message_ = e.what();
      } catch (...) {
        first_error_message_ = "an unknown exception";
      }
    }
    failed_ = true;
  }
  // Ranks waiting in a collective for this one would wait forever.
  try {
    group_->abort();
  } catch (...) {
  }
  if (remote_) remote_->abort();
}

void TensorParallelModel::check_usable() const {
  if (!failed_.load()) return;
  std::lock_guard lock(failure_mutex_);
  fail(ErrorKind::kInternal,
       "[tensor-parallel] the group stopped after rank {} failed ({}); load the model again to use it",
       first_error_rank_, first_error_message_);
}

void TensorParallelModel::run_on_ranks(const std::function<void(int, backend::Communicator&)>& fn) {
  if (remote_) {
    fail(ErrorKind::kUnsupported,
         "[tensor-parallel] running a function on every rank needs every rank in this process");
  }
  run_job_on_ranks([&](int r) { fn(r, *ranks_[static_cast<size_t>(r)]->comm); });
}

void TensorParallelModel::run_job_on_ranks(const std::function<void(int)>& job) {
  check_usable();
  for (auto& rank : ranks_) {
    if (rank->comm) rank->comm->reset_counts();
  }
  const int workers = ranks() - 1;
  {
    std::lock_guard lock(mutex_);
    job_ = &job;
    pending_ = workers;
    ++generation_;
  }
  job_ready_.notify_all();
  try {
    group_->bind_thread(0);
    job(0);
  } catch (...) {
    record_failure(0, std::current_exception());
  }
  {
    std::unique_lock lock(mutex_);
    job_done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
  }
  if (!failed_.load()) return;
  std::exception_ptr error;
  int rank = -1;
  {
    std::lock_guard lock(failure_mutex_);
    error = first_error_;
    rank = first_error_rank_;
  }
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    fail(e.kind(), "[tensor-parallel] rank {}: {}", rank, e.what());
  } catch (const std::exception& e) {
    fail(ErrorKind::kInternal, "[tensor-parallel] rank {}: {}", rank, e.what());
  } catch (...) {
    fail(ErrorKind::kInternal, "[tensor-parallel] rank {}: an unknown exception", rank);
  }
}

const ModelInfo& TensorParallelModel::info() const {
  return ranks_[0]->model->info();
}

backend::Backend* TensorParallelModel::backend() {
  return ranks_[0]->model->backend();
}

CollectiveCounts TensorParallelModel::last_step_collectives() const {
  const RankCommunicator& comm = *ranks_[0]->comm;
  return {comm.all_reduces.load(), comm.all_gathers.load(), comm.broadcasts.load()};
}

Tensor TensorParallelModel::encode_image(const ImagePixels& image) {
  check_usable();
  group_->bind_thread(0);
  Tensor embeddings = ranks_[0]->model->encode_image(image);
  if (embeddings.device().kind != DeviceKind::kCpu) embeddings = group_->backend(0).to_host(embeddings);
  return embeddings;
}

backend::KvCache& TensorParallelModel::mirror_cache(Rank& rank, const backend::KvCache& engine_cache) {
  const uint64_t now = step_counter_;
  for (Mirror& m : rank.mirrors) {
    // The same address with another layout is a new cache that reuses the old one's memory.
    if (m.engine_cache == &engine_cache && m.blocks == engine_cache.total_blocks() &&
        m.block_size == engine_cache.block_size()) {
      m.last_used = now;
      return *m.cache;
    }
  }
  std::erase_if(rank.mirrors, [&](const Mirror& m) { return m.engine_cache == &engine_cache; });
  if (rank.mirrors.size() >= kMaxMirrors) {
    rank.mirrors.erase(std::min_element(rank.mirrors.begin(), rank.mirrors.end(),
                                        [](const Mirror& a, const Mirror& b) { return a.last_used < b.last_used; }));
  }
  Mirror m;
  m.engine_cache = &engine_cache;
  m.blocks = engine_cache.total_blocks();
  m.block_size = engine_cache.block_size();
  m.last_used = now;
  m.cache = std::make_unique<backend::KvCache>(backend::KvCacheConfig{rank.model->info().kv, m.blocks, m.block_size},
                                               rank.model->backend());
  rank.mirrors.push_back(std::move(m));
  return *rank.mirrors.back().cache;
}

Tensor TensorParallelModel::forward(const StepInputs& step, backend::KvCache& cache) {
  check_usable();
  ++step_counter_;
  // Every rank takes the image rows from host memory.
  std::vector<ImageRows> host_images;
  host_images.reserve(step.images.size());
  for (const ImageRows& rows : step.images) {
    ImageRows copy{rows.row_begin, rows.embeddings};
    if (copy.embeddings.device().kind != DeviceKind::kCpu) {
      group_->bind_thread(0);
      copy.embeddings = group_->backend(0).to_host(copy.embeddings);
    }
    host_images.push_back(std::move(copy));
  }
  const StepInputs shared{step.batch, host_images, step.all_logits};
  // Remote ranks get the step as bytes, encoded once for all of them.
  std::vector<uint8_t> encoded;
  if (remote_) {
    encoded = encode_step(shared, {reinterpret_cast<uintptr_t>(&cache), cache.total_blocks(), cache.block_size()});
  }
  Tensor logits;
  run_job_on_ranks([&](int r) {
    Rank& rank = *ranks_[static_cast<size_t>(r)];
    if (rank.remote) {
      remote_->run_step(r, encoded);
    } else if (r == 0) {
      logits = rank.model->forward(shared, cache);
    } else {
      (void)rank.model->forward(shared, mirror_cache(rank, cache));
    }
  });
  return logits;
}

std::unique_ptr<TensorParallelModel> load_tensor_parallel(const weights::Snapshot& snapshot,
                                                          std::unique_ptr<backend::RankGroup> group) {
  return std::make_unique<TensorParallelModel>(std::move(group),
                                               [&snapshot](int, backend::Backend& backend, const Sharding& sharding) {
                                                 return load_model(snapshot, backend, sharding);
                                               });
}

}  // namespace loom::model
