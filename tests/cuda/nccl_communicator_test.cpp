// The NCCL communicator on two GPUs against sums, gathers and copies computed on the host from the same random inputs:
// each rank runs on its own thread bound to its GPU, as the tensor-parallel driver runs them. Skips with fewer than
// two GPUs (and is not built without NCCL).
#ifdef LOOM_HAS_NCCL

#include "backend/cuda/nccl_communicator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <random>
#include <thread>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace loom::backend::cuda {
namespace {

using namespace std::chrono_literals;

class NcclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() < 2) GTEST_SKIP() << "needs 2 GPUs, " << device_count() << " present";
    group_ = make_nccl_group({0, 1});
  }

  // Runs fn(rank) on one thread per rank (bound to its GPU) and waits, failing instead of hanging.
  void on_ranks(const std::function<void(int)>& fn) {
    std::vector<std::future<void>> ranks;
    for (int r = 0; r < 2; ++r) {
      ranks.push_back(std::async(std::launch::async, [&, r] {
        group_->bind_thread(r);
        fn(r);
      }));
    }
    for (auto& rank : ranks) {
      if (rank.wait_for(60s) != std::future_status::ready) {
        ADD_FAILURE() << "a rank hangs";
        std::_Exit(1);
      }
      rank.get();
    }
  }

  Tensor random(Shape shape, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
    for (float& v : t.span<float>()) v = dist(rng);
    return t;
  }

  std::unique_ptr<RankGroup> group_;
};

TEST_F(NcclTest, NvlinkMulticastIsOff) {
  const char* value = std::getenv("NCCL_NVLS_ENABLE");
  ASSERT_NE(value, nullptr);
  EXPECT_STREQ(value, "0");
}

TEST_F(NcclTest, AllReduceSumsEveryRanksTensor) {
  const Tensor a = random({3, 70}, 1), b = random({3, 70}, 2);
  std::vector<Tensor> results(2);
  on_ranks([&](int r) {
    Backend& backend = group_->backend(r);
    Tensor x = backend.upload(r == 0 ? a : b);
    EXPECT_EQ(x.device(), (Device{DeviceKind::kCuda, r}));
    group_->communicator(r).all_reduce_sum(x);
    results[static_cast<size_t>(r)] = backend.to_host(x);
  });
  for (int r = 0; r < 2; ++r) {
    for (int64_t i = 0; i < a.elements(); ++i) {
      ASSERT_FLOAT_EQ(results[r].data_as<float>()[i], a.data_as<float>()[i] + b.data_as<float>()[i]) << r << " " << i;
    }
  }
}

TEST_F(NcclTest, AllGatherColumnsPutsEachRanksColumnsInRankOrder) {
  const int64_t rows = 5, cols = 7;
  const Tensor a = random({rows, cols}, 3), b = random({rows, cols}, 4);
  std::vector<Tensor> results(2);
  on_ranks([&](int r) {
    Backend& backend = group_->backend(r);
    const Tensor x = backend.upload(r == 0 ? a : b);
    Tensor out = backend.allocate(DType::kF32, {rows, 2 * cols});
    group_->communicator(r).all_gather_columns(x, out);
    results[static_cast<size_t>(r)] = backend.to_host(out);
  });
  for (int r = 0; r < 2; ++r) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t c = 0; c < 2 * cols; ++c) {
        const Tensor& owner = c < cols ? a : b;
        ASSERT_EQ(results[r].data_as<float>()[i * 2 * cols + c], owner.data_as<float>()[i * cols + c % cols])
            << r << " " << i << " " << c;
      }
    }
  }
}

TEST_F(NcclTest, BroadcastCopiesTheRootsTensor) {
  const Tensor a = random({4, 9}, 5), b = random({4, 9}, 6);
  std::vector<Tensor> results(2);
  on_ranks([&](int r) {
    Backend& backend = group_->backend(r);
    Tensor x = backend.upload(r == 0 ? a : b);
    group_->communicator(r).broadcast(x, 1);
    results[static_cast<size_t>(r)] = backend.to_host(x);
  });
  for (int r = 0; r < 2; ++r) {
    for (int64_t i = 0; i < b.elements(); ++i) ASSERT_EQ(results[r].data_as<float>()[i], b.data_as<float>()[i]);
  }
}

TEST_F(NcclTest, WrongTensorsAreRefusedNamingTheOp) {
  Tensor host = Tensor::zeros(DType::kF32, {2, 2});
  try {
    group_->communicator(0).all_reduce_sum(host);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[all_reduce_sum] x is not in the memory of GPU 0"), std::string::npos)
        << e.what();
  }
}

TEST_F(NcclTest, AbortReleasesARankWaitingForItsPeer) {
  // Rank 0 enters an all-reduce rank 1 never joins; abort() must let its read-back return, and later calls throw.
  auto waiting = std::async(std::launch::async, [&] {
    group_->bind_thread(0);
    Tensor x = group_->backend(0).allocate(DType::kF32, {1, 1024});
    group_->communicator(0).all_reduce_sum(x);
    try {
      (void)group_->backend(0).to_host(x);
    } catch (const Error&) {
      // A device error after the abort is an acceptable outcome; hanging is not.
    }
  });
  EXPECT_EQ(waiting.wait_for(500ms), std::future_status::timeout) << "the all-reduce finished without its peer";
  group_->abort();
  if (waiting.wait_for(60s) != std::future_status::ready) {
    ADD_FAILURE() << "abort did not release the waiting rank";
    std::_Exit(1);
  }
  group_->bind_thread(1);
  Tensor y = group_->backend(1).allocate(DType::kF32, {1, 4});
  EXPECT_THROW(group_->communicator(1).all_reduce_sum(y), Error);
}

}  // namespace
}  // namespace loom::backend::cuda

#endif  // LOOM_HAS_NCCL
