// The tensor-parallel driver with a remote rank, in one test process: rank 0 is a TensorParallelModel whose rank 1 is
// reached over localhost TCP (the join, the step codec, RemoteRanks, the socket communicator), and "the worker" is a
// thread running serve_worker_rank on its own socket group, exactly as `loom tp-worker` does. Each rank runs the
// engine's deterministic TestModel on its own cache (rank 1: the mirror the worker builds from the step's cache
// geometry) and keeps the vocabulary columns v with v % 2 == rank, zeroing the others, then all-reduces: the logits
// the engine samples from are the sum of both ranks' parts. Generated tokens are compared with test_model.h's
// reference recurrence computed from the prompt alone, so a step that reached the worker wrong (a batch field, a
// block table, image rows) or a wrong mirror cache would change them. A worker whose step fails reports the error, and
// rank 0 rethrows it with its kind and the rank named.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "backend/cpu/socket_communicator.h"
#include "backend/tcp_link.h"
#include "engine/engine.h"
#include "engine/engine_requests.h"
#include "engine/test_model.h"
#include "model/remote_ranks.h"
#include "model/tensor_parallel_model.h"

namespace loom::engine {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::kVocab;
using testing::text_request;
using testing::tokens_of;

// TestModel's logits, this rank's vocabulary columns only, summed over the ranks.
class SplitTestModel final : public model::Model {
 public:
  SplitTestModel(backend::Communicator& comm, int fail_at_call) : comm_(comm), fail_at_call_(fail_at_call) {}
  const model::ModelInfo& info() const override { return inner_.info(); }
  Tensor encode_image(const model::ImagePixels& image) override { return inner_.encode_image(image); }
  Tensor forward(const model::StepInputs& step, backend::KvCache& cache) override {
    if (++calls_ == fail_at_call_) {
      fail(ErrorKind::kOverloaded, "rank {} ran out of memory at call {}", comm_.rank(), calls_);
    }
    const Tensor full = inner_.forward(step, cache);
    Tensor part = Tensor::zeros(DType::kF32, full.shape());
    for (int64_t i = 0; i < full.elements(); ++i) {
      if (i % kVocab % comm_.size() == comm_.rank()) part.data_as<float>()[i] = full.data_as<const float>()[i];
    }
    comm_.all_reduce_sum(part);
    return part;
  }

 private:
  backend::Communicator& comm_;
  int fail_at_call_;
  int calls_ = 0;
  testing::TestModel inner_;
};

const model::ModelFingerprint kFingerprint{"TestModel", 2, testing::kHidden, 2};

// Rank 0 here; rank 1 served by a thread, which fails its step number `worker_fails_at` (-1: never).
struct RemotePair {
  explicit RemotePair(int worker_fails_at) {
    backend::TcpListener listener({"127.0.0.1", 0});
    const int port = listener.port();
    worker = std::async(std::launch::async, [port, worker_fails_at]() -> std::string {
      try {
        model::RankZeroLink link = model::join_rank_zero({"127.0.0.1", port}, 1, kFingerprint, true, 30s);
        std::vector<std::unique_ptr<backend::TcpConnection>> links;
        links.push_back(std::move(link.data));
        auto group = backend::cpu::make_socket_process_group(1, 2, std::move(links));
        model::serve_worker_rank(
            *group, 1,
            [worker_fails_at](backend::Backend&, backend::Communicator& comm) {
              return std::make_unique<SplitTestModel>(comm, worker_fails_at);
            },
            *link.control);
        return "shut down";
      } catch (const Error& e) {
        return e.what();
      }
    });
    model::JoinOptions join;
    join.timeout = 30s;
    model::JoinedWorkers joined = model::accept_workers(listener, kFingerprint, join);
    tp = std::make_unique<model::TensorParallelModel>(
        backend::cpu::make_socket_process_group(0, 2, std::move(joined.data)),
        [](int, backend::Backend&, const model::Sharding& sharding) {
          return std::make_unique<SplitTestModel>(*sharding.comm, -1);
        },
        std::make_unique<model::RemoteRanks>(std::move(joined.control)));
  }
  std::future<std::string> worker;
  std::unique_ptr<model::TensorParallelModel> tp;
};

TEST(TensorParallelRemoteRank, EngineGeneratesTheReferenceTokensWithARankOverTcp) {
  RemotePair pair(-1);
  ASSERT_EQ(pair.tp->ranks(), 2);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 5; ++i) {
    std::vector<int32_t> p;
    for (int j = 0; j < 5 + 7 * i; ++j) p.push_back((j * 13 + i * 5 + 1) % 50);
    prompts.push_back(p);
  }
  // An image request too: its rows reach the worker through the step message.
  testing::ImageCase image = testing::image_case(6);
  {
    // Small blocks and steps: prompts span several blocks and prefill in chunks next to other sequences' decodes.
    Engine engine(std::move(pair.tp), nullptr, {.kv_tokens = 1024, .block_size = 4, .step_tokens = 16});
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& p : prompts) streams.push_back(engine.submit(text_request(p, 12)));
    auto image_stream = engine.submit(std::move(image.request));
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(tokens_of(streams[i]), testing::reference_text(prompts[i], 12)) << "request " << i;
    }
    EXPECT_EQ(tokens_of(image_stream), image.expected);
  }
  // Unloading the model told the worker to stop.
  ASSERT_EQ(pair.worker.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(pair.worker.get(), "shut down");
}

TEST(TensorParallelRemoteRank, AWorkersFailureReachesRankZeroWithItsKindAndRank) {
  RemotePair pair(2);
  model::TensorParallelModel& tp = *pair.tp;
  backend::KvCache cache({tp.info().kv, 8, 4});
  std::vector<int32_t> table;
  cache.reserve(table, 8);
  backend::Batch first;
  first.sequences.push_back({.token_offset = 0, .token_count = 2, .kv_start = 0, .block_table = table});
  first.token_ids = {3, 4};
  first.positions = {0, 1};
  backend::Batch second = first;
  second.sequences[0].kv_start = 2;
  second.positions = {2, 3};
  (void)tp.forward({.batch = &first}, cache);
  // Rank 1 throws before its all-reduce; rank 0 waits in it until the error reply aborts the group.
  auto failed = std::async(std::launch::async, [&] {
    try {
      (void)tp.forward({.batch = &second}, cache);
      return std::make_pair(ErrorKind::kInternal, std::string("no error"));
    } catch (const Error& e) {
      return std::make_pair(e.kind(), std::string(e.what()));
    }
  });
  ASSERT_EQ(failed.wait_for(30s), std::future_status::ready) << "rank 0 was left hanging";
  const auto [kind, message] = failed.get();
  EXPECT_EQ(kind, ErrorKind::kOverloaded) << message;
  EXPECT_THAT(message, HasSubstr("[tensor-parallel] rank 1: the worker process of rank 1: rank 1 ran out of memory"));
  EXPECT_TRUE(tp.failed());
  EXPECT_THROW((void)tp.forward({.batch = &second}, cache), Error);
  EXPECT_THROW(tp.run_on_ranks([](int, backend::Communicator&) {}), Error);
  // The worker ends with its own failure once rank 0 has closed the group.
  ASSERT_EQ(pair.worker.wait_for(30s), std::future_status::ready);
  EXPECT_THAT(pair.worker.get(), HasSubstr("ran out of memory at call 2"));
}

}  // namespace
}  // namespace loom::engine
