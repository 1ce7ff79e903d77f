// The tensor-parallel driver (model::TensorParallelModel) with an in-test group: N threads, host memory, and a
// communicator written here (a rendezvous that sums, gathers or broadcasts once every rank has arrived, and that an
// abort wakes). Each rank runs the engine's deterministic TestModel on its own KV cache and then shards its logits:
// it keeps the vocabulary columns v with v % N == rank, zeroes the others and all-reduces, so the logits the engine
// samples from are the sum of every rank's part. Every rank also gathers every rank's greedy target and refuses to go
// on when they disagree. Generated tokens are compared with test_model.h's reference recurrence, computed from the
// prompt alone: a rank whose cache mirror, batch or image rows were wrong would change them or throw.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <set>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "engine/engine_requests.h"
#include "engine/test_model.h"
#include "model/tensor_parallel_model.h"

namespace loom::engine {
namespace {

using namespace std::chrono_literals;
using testing::kVocab;
using testing::TestModel;
using testing::text_request;
using testing::tokens_of;

// All ranks' state for the in-test collectives.
class Rendezvous {
 public:
  explicit Rendezvous(int ranks) : ranks_(ranks), inputs_(static_cast<size_t>(ranks)) {}

  // Each rank hands in its tensor; the last to arrive runs `combine` over all of them (under the lock), then all
  // return. Throws once abort() was called (before or while waiting).
  void meet(int rank, Tensor* tensor, const std::function<void(std::vector<Tensor*>&)>& combine) {
    std::unique_lock lock(mutex_);
    if (aborted_) fail(ErrorKind::kInternal, "collective aborted");
    inputs_[static_cast<size_t>(rank)] = tensor;
    const uint64_t generation = generation_;
    if (++arrived_ == ranks_) {
      combine(inputs_);
      arrived_ = 0;
      ++generation_;
      changed_.notify_all();
      return;
    }
    changed_.wait(lock, [&] { return generation_ != generation || aborted_; });
    if (generation_ == generation) fail(ErrorKind::kInternal, "collective aborted");
  }

  void abort() {
    std::lock_guard lock(mutex_);
    aborted_ = true;
    changed_.notify_all();
  }

 private:
  int ranks_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Tensor*> inputs_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  bool aborted_ = false;
};

class TestCommunicator final : public backend::Communicator {
 public:
  TestCommunicator(Rendezvous& rendezvous, int rank, int size) : rendezvous_(rendezvous), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(Tensor& x) override {
    rendezvous_.meet(rank_, &x, [](std::vector<Tensor*>& all) {
      std::vector<float> sum(static_cast<size_t>(all[0]->elements()), 0.0f);
      for (Tensor* t : all) {
        for (size_t i = 0; i < sum.size(); ++i) sum[i] += t->data_as<float>()[i];
      }
      for (Tensor* t : all) std::copy(sum.begin(), sum.end(), t->data_as<float>());
    });
  }
  void all_gather_columns(const Tensor& x, Tensor& out) override {
    // The rendezvous carries one tensor per rank: hand in `out` after putting x in its own columns.
    const int64_t rows = x.dim(0), cols = x.dim(1);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        out.data_as<float>()[r * cols * size_ + rank_ * cols + c] = x.data_as<const float>()[r * cols + c];
      }
    }
    rendezvous_.meet(rank_, &out, [rows, cols](std::vector<Tensor*>& all) {
      const auto n = static_cast<int64_t>(all.size());
      for (int64_t owner = 0; owner < n; ++owner) {
        for (Tensor* t : all) {
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
              const int64_t at = r * cols * n + owner * cols + c;
              t->data_as<float>()[at] = all[static_cast<size_t>(owner)]->data_as<float>()[at];
            }
          }
        }
      }
    });
  }
  void broadcast(Tensor& x, int root) override {
    rendezvous_.meet(rank_, &x, [root](std::vector<Tensor*>& all) {
      const Tensor* source = all[static_cast<size_t>(root)];
      for (Tensor* t : all) std::copy_n(source->data_as<const float>(), source->elements(), t->data_as<float>());
    });
  }

 private:
  Rendezvous& rendezvous_;
  int rank_, size_;
};

class TestGroup final : public backend::RankGroup {
 public:
  explicit TestGroup(int ranks) : rendezvous_(ranks), bound_(static_cast<size_t>(ranks)) {
    for (int r = 0; r < ranks; ++r) {
      comms_.push_back(std::make_unique<TestCommunicator>(rendezvous_, r, ranks));
      backends_.push_back(std::make_unique<backend::cpu::CpuBackend>());
    }
  }
  int size() const override { return static_cast<int>(comms_.size()); }
  backend::Backend& backend(int rank) override { return *backends_[static_cast<size_t>(rank)]; }
  backend::Communicator& communicator(int rank) override { return *comms_[static_cast<size_t>(rank)]; }
  void bind_thread(int rank) override {
    std::lock_guard lock(mutex_);
    bound_[static_cast<size_t>(rank)].push_back(std::this_thread::get_id());
  }
  void abort() override {
    aborts_.fetch_add(1);
    rendezvous_.abort();
  }

  std::vector<std::thread::id> bound(int rank) {
    std::lock_guard lock(mutex_);
    return bound_[static_cast<size_t>(rank)];
  }
  int aborts() const { return aborts_.load(); }

 private:
  Rendezvous rendezvous_;
  std::vector<std::unique_ptr<TestCommunicator>> comms_;
  std::vector<std::unique_ptr<backend::cpu::CpuBackend>> backends_;
  std::mutex mutex_;
  std::vector<std::vector<std::thread::id>> bound_;
  std::atomic<int> aborts_{0};
};

// What the ranks saw, shared by the test and every rank model.
struct Observations {
  std::mutex mutex;
  std::vector<std::set<std::thread::id>> forward_threads;
  std::vector<std::thread::id> destroyed_on;
  std::vector<int> forwards;
  // (rank, call) at which a rank throws, and whether it throws before its all-reduce (others then wait for it).
  int fail_rank = -1;
  int fail_call = -1;
  explicit Observations(int ranks)
      : forward_threads(static_cast<size_t>(ranks)),
        destroyed_on(static_cast<size_t>(ranks)),
        forwards(static_cast<size_t>(ranks), 0) {}
};

class ShardedTestModel final : public model::Model {
 public:
  ShardedTestModel(int rank, backend::Communicator& comm, Observations& seen) : rank_(rank), comm_(comm), seen_(seen) {}
  ~ShardedTestModel() override {
    std::lock_guard lock(seen_.mutex);
    seen_.destroyed_on[static_cast<size_t>(rank_)] = std::this_thread::get_id();
  }
  const model::ModelInfo& info() const override { return inner_.info(); }
  Tensor encode_image(const model::ImagePixels& image) override {
    if (rank_ != 0) fail(ErrorKind::kInternal, "encode_image ran on rank {}", rank_);
    return inner_.encode_image(image);
  }

  Tensor forward(const model::StepInputs& step, backend::KvCache& cache) override {
    int call = 0;
    {
      std::lock_guard lock(seen_.mutex);
      seen_.forward_threads[static_cast<size_t>(rank_)].insert(std::this_thread::get_id());
      call = ++seen_.forwards[static_cast<size_t>(rank_)];
      if (seen_.fail_rank == rank_ && seen_.fail_call == call) {
        fail(ErrorKind::kOverloaded, "rank {} ran out of memory at call {}", rank_, call);
      }
    }
    for (const model::ImageRows& rows : step.images) {
      if (rows.embeddings.device().kind != DeviceKind::kCpu) fail(ErrorKind::kInternal, "image rows not on the host");
    }
    const Tensor full = inner_.forward(step, cache);  // this rank's own cache
    const int64_t rows = full.dim(0);
    const int n = comm_.size();

    // Every rank must have reached the same greedy target (same cache contents, batch and image rows).
    Tensor target = Tensor::zeros(DType::kF32, {rows, 1});
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = full.data_as<const float>() + r * kVocab;
      target.data_as<float>()[r] = static_cast<float>(std::max_element(row, row + kVocab) - row);
    }
    Tensor targets = Tensor::zeros(DType::kF32, {rows, n});
    comm_.all_gather_columns(target, targets);
    for (int64_t r = 0; r < rows; ++r) {
      for (int k = 0; k < n; ++k) {
        if (targets.data_as<float>()[r * n + k] != target.data_as<float>()[r]) {
          fail(ErrorKind::kInternal, "rank {} disagrees with rank {} on row {}", k, rank_, r);
        }
      }
    }
    Tensor step_number = Tensor::zeros(DType::kF32, {1, 1});
    step_number.data_as<float>()[0] = rank_ == 0 ? static_cast<float>(call) : -1.0f;
    comm_.broadcast(step_number, 0);
    if (step_number.data_as<float>()[0] != static_cast<float>(call)) fail(ErrorKind::kInternal, "broadcast");

    Tensor part = Tensor::zeros(DType::kF32, {rows, kVocab});
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t v = rank_; v < kVocab; v += n)
        part.data_as<float>()[r * kVocab + v] = full.data_as<float>()[r * kVocab + v];
    }
    comm_.all_reduce_sum(part);
    return part;
  }

 private:
  int rank_;
  backend::Communicator& comm_;
  Observations& seen_;
  TestModel inner_;
};

struct Fixture {
  explicit Fixture(int ranks) : seen(ranks) {
    auto group_ptr = std::make_unique<TestGroup>(ranks);
    group = group_ptr.get();
    model = std::make_unique<model::TensorParallelModel>(
        std::move(group_ptr), [this](int rank, backend::Backend&, const model::Sharding& sharding) {
          EXPECT_EQ(sharding.rank(), rank);
          return std::make_unique<ShardedTestModel>(rank, *sharding.comm, seen);
        });
  }
  Observations seen;
  TestGroup* group = nullptr;
  std::unique_ptr<model::TensorParallelModel> model;
};

TEST(TensorParallelDriver, EngineGeneratesTheReferenceTokensOnThreeRanks) {
  Fixture f(3);
  model::TensorParallelModel* tp = f.model.get();
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> p;
    for (int j = 0; j < 5 + 7 * i; ++j) p.push_back((j * 13 + i * 5 + 1) % 50);
    prompts.push_back(p);
  }
  {
    // Small blocks and steps: prompts span several blocks and prefill in chunks next to other sequences' decodes.
    Engine engine(std::move(f.model), nullptr, {.kv_tokens = 1024, .block_size = 4, .step_tokens = 16});
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& p : prompts) streams.push_back(engine.submit(text_request(p, 12)));
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(tokens_of(streams[i]), testing::reference_text(prompts[i], 12)) << "request " << i;
    }
    // Three collectives per step on every rank: the target gather, the broadcast and the logits all-reduce.
    const model::CollectiveCounts counts = tp->last_step_collectives();
    EXPECT_EQ(counts.all_reduces, 1);
    EXPECT_EQ(counts.all_gathers, 1);
    EXPECT_EQ(counts.broadcasts, 1);
    // Each worker thread bound itself to its rank once, and ran every step of its rank.
    for (int r = 1; r < 3; ++r) {
      const auto bound = f.group->bound(r);
      ASSERT_EQ(bound.size(), 1u) << "rank " << r;
      std::lock_guard lock(f.seen.mutex);
      EXPECT_EQ(f.seen.forward_threads[r], std::set<std::thread::id>{bound[0]}) << "rank " << r;
    }
  }
  // Rank 0 ran on the engine's thread; ranks 1 and 2 each on one thread of their own, bound once, which also
  // destroyed their model.
  std::set<std::thread::id> all;
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(f.seen.forward_threads[r].size(), 1u) << "rank " << r;
    all.insert(*f.seen.forward_threads[r].begin());
  }
  EXPECT_EQ(all.size(), 3u);
  for (int r = 1; r < 3; ++r) {
    EXPECT_EQ(f.seen.destroyed_on[r], *f.seen.forward_threads[r].begin()) << "rank " << r;
  }
  EXPECT_NE(f.seen.destroyed_on[0], *f.seen.forward_threads[1].begin());
}

TEST(TensorParallelDriver, ImageRowsReachEveryRankFromHostMemory) {
  Fixture f(2);
  testing::ImageCase image = testing::image_case(6);

  Engine engine(std::move(f.model), nullptr, {.kv_tokens = 256, .block_size = 4});
  EXPECT_EQ(tokens_of(engine.submit(std::move(image.request))), image.expected);
}

TEST(TensorParallelDriver, MirrorsFollowEachEngineCache) {
  // Two caches used in turn (the bench's warm-up cache, then the engine's): each rank keeps a mirror of each.
  Fixture f(2);
  const model::ModelInfo info = f.model->info();
  backend::KvCache a({info.kv, 8, 4}), b({info.kv, 8, 4});
  std::vector<int32_t> table_a, table_b;
  a.reserve(table_a, 12);
  b.reserve(table_b, 12);
  const auto batch_for = [](std::vector<int32_t> ids, int64_t kv_start, const std::vector<int32_t>& table) {
    backend::Batch batch;
    const auto n = static_cast<int64_t>(ids.size());
    batch.sequences.push_back({.token_offset = 0, .token_count = n, .kv_start = kv_start, .block_table = table});
    batch.token_ids = std::move(ids);
    for (int64_t i = 0; i < n; ++i) batch.positions.push_back(static_cast<int32_t>(kv_start + i));
    return batch;
  };
  const std::vector<int32_t> pa = {1, 2, 3, 4, 5}, pb = {9, 8, 7};
  const auto argmax = [](const Tensor& logits) {
    const float* row = logits.data_as<const float>();
    return static_cast<int32_t>(std::max_element(row, row + kVocab) - row);
  };
  auto step_a = batch_for(pa, 0, table_a);
  auto step_b = batch_for(pb, 0, table_b);
  const int32_t a1 = argmax(f.model->forward({.batch = &step_a}, a));
  const int32_t b1 = argmax(f.model->forward({.batch = &step_b}, b));
  auto next_a = batch_for({a1}, 5, table_a);
  auto next_b = batch_for({b1}, 3, table_b);
  const int32_t a2 = argmax(f.model->forward({.batch = &next_a}, a));
  const int32_t b2 = argmax(f.model->forward({.batch = &next_b}, b));
  EXPECT_EQ((std::vector<int32_t>{a1, a2}), testing::reference_text(pa, 2));
  EXPECT_EQ((std::vector<int32_t>{b1, b2}), testing::reference_text(pb, 2));
}

// Runs forward on another thread and gives up after a while, so a hang fails the test instead of stalling it.
std::future<std::string> forward_async(model::TensorParallelModel& model, const backend::Batch& batch,
                                       backend::KvCache& cache, ErrorKind& kind) {
  return std::async(std::launch::async, [&] {
    try {
      (void)model.forward({.batch = &batch}, cache);
      return std::string("no error");
    } catch (const Error& e) {
      kind = e.kind();
      return std::string(e.what());
    }
  });
}

void expect_failure_surfaces(int fail_rank) {
  Fixture f(3);
  f.seen.fail_rank = fail_rank;
  f.seen.fail_call = 2;
  const model::ModelInfo info = f.model->info();
  backend::KvCache cache({info.kv, 8, 4});
  std::vector<int32_t> table;
  cache.reserve(table, 8);
  backend::Batch first;
  first.sequences.push_back({.token_offset = 0, .token_count = 2, .kv_start = 0, .block_table = table});
  first.token_ids = {3, 4};
  first.positions = {0, 1};
  backend::Batch second = first;
  second.sequences[0].kv_start = 2;
  second.positions = {2, 3};

  ErrorKind kind = ErrorKind::kInternal;
  auto ok = forward_async(*f.model, first, cache, kind);
  ASSERT_EQ(ok.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ok.get(), "no error");
  // The failing rank throws before its collectives; the other two are left waiting in the gather until the abort.
  auto failed = forward_async(*f.model, second, cache, kind);
  ASSERT_EQ(failed.wait_for(10s), std::future_status::ready) << "a rank was left hanging";
  const std::string message = failed.get();
  EXPECT_NE(message.find(fmt::format("rank {}: rank {} ran out of memory", fail_rank, fail_rank)), std::string::npos)
      << message;
  EXPECT_EQ(kind, ErrorKind::kOverloaded);  // the failing rank's kind, not the aborted collectives'
  EXPECT_GE(f.group->aborts(), 1);
  EXPECT_TRUE(f.model->failed());

  // The group is broken for good: later steps fail at once, naming the first failure.
  auto later = forward_async(*f.model, second, cache, kind);
  ASSERT_EQ(later.wait_for(10s), std::future_status::ready);
  const std::string again = later.get();
  EXPECT_NE(again.find(fmt::format("stopped after rank {} failed", fail_rank)), std::string::npos) << again;
  EXPECT_EQ(kind, ErrorKind::kInternal);
  // The destructor still joins every worker (the test would hang here otherwise).
}

TEST(TensorParallelDriver, AFailureOnAWorkerRankSurfacesOnTheCaller) {
  expect_failure_surfaces(2);
}

TEST(TensorParallelDriver, AFailureOnRankZeroReleasesTheWorkers) {
  expect_failure_surfaces(0);
}

TEST(TensorParallelDriver, EngineFailsTheStepsRequestsWhenARankFails) {
  Fixture f(2);
  f.seen.fail_rank = 1;
  f.seen.fail_call = 3;
  Engine engine(std::move(f.model), nullptr, {.kv_tokens = 256, .block_size = 4});
  auto stream = engine.submit(text_request({1, 2, 3}, 10));
  std::optional<StreamEvent> finish;
  while (auto event = stream->next(20s)) {
    if (event->kind == StreamEvent::Kind::kFinish) {
      finish = std::move(event);
      break;
    }
  }
  ASSERT_TRUE(finish.has_value()) << "the request never finished";
  EXPECT_EQ(finish->reason, FinishReason::kError);
  EXPECT_EQ(finish->error_kind, ErrorKind::kOverloaded);
  EXPECT_NE(finish->error.find("rank 1"), std::string::npos) << finish->error;
}

TEST(TensorParallelDriver, ALoadFailureThrowsFromTheConstructorAndStopsTheThreads) {
  Observations seen(3);
  auto group = std::make_unique<TestGroup>(3);
  try {
    model::TensorParallelModel model(std::move(group),
                                     [&](int rank, backend::Backend&, const model::Sharding& sharding) {
                                       if (rank == 1) fail(ErrorKind::kInvalidFile, "shard 1 is truncated");
                                       return std::make_unique<ShardedTestModel>(rank, *sharding.comm, seen);
                                     });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidFile);
    EXPECT_NE(std::string(e.what()).find("rank 1: shard 1 is truncated"), std::string::npos) << e.what();
  }
}

TEST(TensorParallelDriver, RunOnRanksRunsEveryRankAtOnce) {
  Fixture f(4);
  std::vector<float> got(4, 0.0f);
  f.model->run_on_ranks([&](int rank, backend::Communicator& comm) {
    Tensor x = Tensor::zeros(DType::kF32, {1, 2});
    x.data_as<float>()[0] = static_cast<float>(rank + 1);
    x.data_as<float>()[1] = 1.0f;
    comm.all_reduce_sum(x);  // every rank must be inside at once, or this never returns
    got[static_cast<size_t>(rank)] = x.data_as<float>()[0] * 100 + x.data_as<float>()[1];
  });
  EXPECT_EQ(got, (std::vector<float>{1004, 1004, 1004, 1004}));
  EXPECT_EQ(f.model->last_step_collectives().all_reduces, 1);
  // Each worker thread was bound once; rank 0 is bound on the caller's thread before each job.
  for (int r = 1; r < 4; ++r) EXPECT_EQ(f.group->bound(r).size(), 1u) << "rank " << r;
  EXPECT_EQ(f.group->bound(0).back(), std::this_thread::get_id());
}

TEST(TensorParallelDriver, OneRankNeedsNoThread) {
  Fixture f(1);
  backend::KvCache cache({f.model->info().kv, 4, 4});
  std::vector<int32_t> table;
  cache.reserve(table, 3);
  backend::Batch batch;
  batch.sequences.push_back({.token_offset = 0, .token_count = 3, .kv_start = 0, .block_table = table});
  batch.token_ids = {7, 8, 9};
  batch.positions = {0, 1, 2};
  const Tensor logits = f.model->forward({.batch = &batch}, cache);
  const float* row = logits.data_as<const float>();
  EXPECT_EQ(std::max_element(row, row + kVocab) - row, testing::reference_text({7, 8, 9}, 1)[0]);
  EXPECT_EQ(*f.seen.forward_threads[0].begin(), std::this_thread::get_id());
}

}  // namespace
}  // namespace loom::engine
