// The in-process communicator: threads stand in for ranks. Sums, gathers and broadcasts are checked against values
// computed here directly (sums of integers, exact in fp32), bit-identity across ranks, repeated collectives in a loop
// with 2, 3 and 4 threads (a deadlock would hang the test), and the errors.
#include "backend/cpu/in_process_communicator.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace loom::backend::cpu {
namespace {

// Runs body(rank communicator) on one thread per rank; rethrows nothing, so bodies record their own failures.
void run_ranks(InProcessGroup& group, const std::function<void(Communicator&)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < group.size(); ++r) threads.emplace_back([&group, &body, r] { body(group.rank(r)); });
  for (std::thread& t : threads) t.join();
}

Tensor filled(Shape shape, const std::function<float(int64_t)>& value) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
  for (int64_t i = 0; i < t.elements(); ++i) t.data_as<float>()[i] = value(i);
  return t;
}

class InProcessCommunicatorTest : public ::testing::TestWithParam<int> {};

TEST_P(InProcessCommunicatorTest, AllReduceSumsEveryRanksValues) {
  const int n = GetParam();
  InProcessGroup group(n);
  std::vector<std::vector<float>> results(static_cast<size_t>(n));
  run_ranks(group, [&](Communicator& comm) {
    EXPECT_EQ(comm.size(), n);
    Tensor x = filled({3, 5}, [&](int64_t i) { return static_cast<float>((comm.rank() + 1) * 100 + i); });
    comm.all_reduce_sum(x);
    results[static_cast<size_t>(comm.rank())].assign(x.data_as<float>(), x.data_as<float>() + x.elements());
  });
  for (int64_t i = 0; i < 15; ++i) {
    float want = 0;
    for (int r = 0; r < n; ++r) want += static_cast<float>((r + 1) * 100 + i);
    for (int r = 0; r < n; ++r) EXPECT_EQ(results[static_cast<size_t>(r)][static_cast<size_t>(i)], want) << r;
  }
}

TEST_P(InProcessCommunicatorTest, AllReduceIsBitIdenticalAcrossRanksAndInRankOrder) {
  const int n = GetParam();
  InProcessGroup group(n);
  // Values whose fp32 sum depends on the order: every rank must get the rank-order sum.
  const float values[] = {1e8f, 1.0f, -1e8f, 0.5f};
  float want = values[0];
  for (int r = 1; r < n; ++r) want += values[r];
  std::vector<float> got(static_cast<size_t>(n));
  run_ranks(group, [&](Communicator& comm) {
    Tensor x = filled({1}, [&](int64_t) { return values[comm.rank()]; });
    comm.all_reduce_sum(x);
    got[static_cast<size_t>(comm.rank())] = x.data_as<float>()[0];
  });
  for (int r = 0; r < n; ++r) EXPECT_EQ(std::memcmp(&got[static_cast<size_t>(r)], &want, sizeof(float)), 0) << r;
}

TEST_P(InProcessCommunicatorTest, AllGatherPutsColumnsInRankOrder) {
  const int n = GetParam();
  InProcessGroup group(n);
  const int64_t rows = 3, cols = 2;
  std::vector<std::vector<float>> results(static_cast<size_t>(n));
  run_ranks(group, [&](Communicator& comm) {
    const Tensor x = filled({rows, cols}, [&](int64_t i) { return static_cast<float>(comm.rank() * 1000 + i); });
    Tensor out = Tensor::zeros(DType::kF32, {rows, cols * n});
    comm.all_gather_columns(x, out);
    results[static_cast<size_t>(comm.rank())].assign(out.data_as<float>(), out.data_as<float>() + out.elements());
  });
  for (int r = 0; r < n; ++r) {
    for (int64_t row = 0; row < rows; ++row) {
      for (int64_t c = 0; c < cols * n; ++c) {
        const int64_t source = c / cols, col = c % cols;
        EXPECT_EQ(results[static_cast<size_t>(r)][static_cast<size_t>(row * cols * n + c)],
                  static_cast<float>(source * 1000 + row * cols + col))
            << "rank " << r << " row " << row << " column " << c;
      }
    }
  }
}

TEST_P(InProcessCommunicatorTest, BroadcastCopiesTheRootsTensor) {
  const int n = GetParam();
  InProcessGroup group(n);
  const int root = n - 1;
  std::vector<std::vector<float>> results(static_cast<size_t>(n));
  run_ranks(group, [&](Communicator& comm) {
    Tensor x = filled({4}, [&](int64_t i) { return static_cast<float>(comm.rank() * 10 + i); });
    comm.broadcast(x, root);
    results[static_cast<size_t>(comm.rank())].assign(x.data_as<float>(), x.data_as<float>() + 4);
  });
  for (int r = 0; r < n; ++r) {
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(results[static_cast<size_t>(r)][static_cast<size_t>(i)], root * 10 + i);
  }
}

TEST_P(InProcessCommunicatorTest, RepeatedMixedCollectivesNeitherDeadlockNorMixUpRounds) {
  const int n = GetParam();
  InProcessGroup group(n);
  constexpr int kRounds = 300;
  std::vector<int> failures(static_cast<size_t>(n), 0);
  run_ranks(group, [&](Communicator& comm) {
    int& failed = failures[static_cast<size_t>(comm.rank())];
    for (int round = 0; round < kRounds; ++round) {
      // Sizes change every round, so a rank reading another round's buffer would see the wrong count or values.
      const int64_t len = 1 + round % 7;
      Tensor x = filled({len}, [&](int64_t i) { return static_cast<float>(round + comm.rank() + i); });
      comm.all_reduce_sum(x);
      for (int64_t i = 0; i < len; ++i) {
        const float want = static_cast<float>(n * (round + i) + n * (n - 1) / 2);
        failed += x.data_as<float>()[i] != want;
      }
      const Tensor part = filled({1, len}, [&](int64_t i) { return static_cast<float>(comm.rank() * 100 + i); });
      Tensor all = Tensor::zeros(DType::kF32, {1, len * n});
      comm.all_gather_columns(part, all);
      for (int64_t c = 0; c < len * n; ++c)
        failed += all.data_as<float>()[c] != static_cast<float>((c / len) * 100 + c % len);
      Tensor b = filled({2}, [&](int64_t i) { return static_cast<float>(comm.rank() == round % n ? round + i : -1); });
      comm.broadcast(b, round % n);
      failed +=
          b.data_as<float>()[0] != static_cast<float>(round) || b.data_as<float>()[1] != static_cast<float>(round + 1);
    }
  });
  for (int r = 0; r < n; ++r) EXPECT_EQ(failures[static_cast<size_t>(r)], 0) << "rank " << r;
}

TEST_P(InProcessCommunicatorTest, MismatchedSizesThrowOnEveryRank) {
  const int n = GetParam();
  InProcessGroup group(n);
  std::vector<int> threw(static_cast<size_t>(n), 0);
  run_ranks(group, [&](Communicator& comm) {
    Tensor x = Tensor::zeros(DType::kF32, {comm.rank() == 0 ? 3 : 4});
    try {
      comm.all_reduce_sum(x);
    } catch (const Error& e) {
      threw[static_cast<size_t>(comm.rank())] = e.kind() == ErrorKind::kInternal;
    }
    // The group is still usable afterwards.
    Tensor y = Tensor::zeros(DType::kF32, {2});
    comm.all_reduce_sum(y);
  });
  for (int r = 0; r < n; ++r) EXPECT_EQ(threw[static_cast<size_t>(r)], 1) << r;
}

TEST_P(InProcessCommunicatorTest, DifferentCollectivesAtOneRendezvousThrowOnEveryRank) {
  const int n = GetParam();
  InProcessGroup group(n);
  std::vector<int> threw(static_cast<size_t>(n), 0);
  run_ranks(group, [&](Communicator& comm) {
    Tensor x = Tensor::zeros(DType::kF32, {1, 2});
    try {
      if (comm.rank() == n - 1) {
        comm.broadcast(x, 0);
      } else {
        comm.all_reduce_sum(x);
      }
    } catch (const Error& e) {
      threw[static_cast<size_t>(comm.rank())] = std::string(e.what()).find("called") != std::string::npos;
    }
  });
  for (int r = 0; r < n; ++r) EXPECT_EQ(threw[static_cast<size_t>(r)], 1) << r;
}

TEST_P(InProcessCommunicatorTest, AbortWakesRanksWaitingForAFailedPeer) {
  const int n = GetParam();
  InProcessGroup group(n);
  std::vector<int> threw(static_cast<size_t>(n), 0);
  std::vector<std::thread> waiting;  // every rank but the last, which "failed" and never arrives
  for (int r = 0; r + 1 < n; ++r) {
    waiting.emplace_back([&group, &threw, r] {
      Tensor x = Tensor::zeros(DType::kF32, {4});
      try {
        group.rank(r).all_reduce_sum(x);
      } catch (const Error& e) {
        threw[static_cast<size_t>(r)] = std::string(e.what()).find("aborted") != std::string::npos;
      }
    });
  }
  group.abort();
  for (std::thread& t : waiting) t.join();
  for (int r = 0; r + 1 < n; ++r) EXPECT_EQ(threw[static_cast<size_t>(r)], 1) << r;
  // Any later collective refuses at once.
  Tensor y = Tensor::zeros(DType::kF32, {1, 2});
  EXPECT_THROW(group.rank(n - 1).broadcast(y, 0), Error);
}

INSTANTIATE_TEST_SUITE_P(Ranks, InProcessCommunicatorTest, ::testing::Values(2, 3, 4));

TEST(InProcessCommunicator, RejectsBadArguments) {
  EXPECT_THROW(InProcessGroup(0), Error);
  InProcessGroup group(1);
  EXPECT_THROW(group.rank(1), Error);
  Communicator& comm = group.rank(0);
  Tensor ints = Tensor::zeros(DType::kI32, {2});
  EXPECT_THROW(comm.all_reduce_sum(ints), Error);
  Tensor x = Tensor::zeros(DType::kF32, {2, 3});
  Tensor wrong = Tensor::zeros(DType::kF32, {2, 4});
  EXPECT_THROW(comm.all_gather_columns(x, wrong), Error);
  EXPECT_THROW(comm.broadcast(x, 1), Error);
  // A group of one: the collectives are identities.
  x.data_as<float>()[4] = 7;
  comm.all_reduce_sum(x);
  EXPECT_EQ(x.data_as<float>()[4], 7);
}

}  // namespace
}  // namespace loom::backend::cpu
