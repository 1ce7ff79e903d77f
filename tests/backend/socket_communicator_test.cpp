// TCP between tensor-parallel processes (backend/tcp_link.h) and the socket communicator over it
// (backend/cpu/socket_communicator.h), with threads standing in for the processes over real localhost connections.
// Collectives are checked against values computed here (integer sums, exact in fp32; gathered columns; the root's
// copy) on 2 and 3 ranks, bit-identity with the in-process group's rank-order sum, mismatched calls, abort() waking a
// blocked rank, and the transport's errors: bad addresses, a port in use, timeouts, a peer that goes away.

#include "backend/cpu/socket_communicator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "backend/cpu/in_process_communicator.h"
#include "backend/tcp_link.h"
#include "core/error.h"

namespace loom::backend::cpu {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Connections of a star: rank 0 holds links[r] to rank r; rank r holds its one link to rank 0.
struct Star {
  std::vector<std::vector<std::unique_ptr<TcpConnection>>> links;
};

Star connect_star(int n) {
  TcpListener listener({"127.0.0.1", 0});
  Star star;
  star.links.resize(static_cast<size_t>(n));
  star.links[0].resize(static_cast<size_t>(n));
  for (int r = 1; r < n; ++r) {
    star.links[static_cast<size_t>(r)].push_back(connect_tcp({"127.0.0.1", listener.port()}, 10s));
    star.links[0][static_cast<size_t>(r)] = listener.accept(std::chrono::steady_clock::now() + 10s);
    EXPECT_NE(star.links[0][static_cast<size_t>(r)], nullptr);
  }
  return star;
}

std::vector<std::unique_ptr<SocketCommunicator>> communicators(int n) {
  Star star = connect_star(n);
  std::vector<std::unique_ptr<SocketCommunicator>> comms;
  for (int r = 0; r < n; ++r) {
    comms.push_back(std::make_unique<SocketCommunicator>(r, n, std::move(star.links[static_cast<size_t>(r)])));
  }
  return comms;
}

void run_ranks(std::vector<std::unique_ptr<SocketCommunicator>>& comms,
               const std::function<void(Communicator&)>& body) {
  std::vector<std::thread> threads;
  for (auto& comm : comms) threads.emplace_back([&body, &comm] { body(*comm); });
  for (std::thread& t : threads) t.join();
}

Tensor filled(Shape shape, const std::function<float(int64_t)>& value) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
  for (int64_t i = 0; i < t.elements(); ++i) t.data_as<float>()[i] = value(i);
  return t;
}

class SocketCommunicatorTest : public ::testing::TestWithParam<int> {};

TEST_P(SocketCommunicatorTest, CollectivesGiveWhatTheyPromise) {
  const int n = GetParam();
  auto comms = communicators(n);
  run_ranks(comms, [&](Communicator& comm) {
    const int r = comm.rank();
    EXPECT_EQ(comm.size(), n);
    for (int round = 0; round < 20; ++round) {
      Tensor x = filled({3, 5}, [&](int64_t i) { return static_cast<float>((r + 1) * 100 + i + round); });
      comm.all_reduce_sum(x);
      for (int64_t i = 0; i < x.elements(); ++i) {
        // Σ_r ((r + 1)·100 + i + round)
        const float want = static_cast<float>(100 * n * (n + 1) / 2 + n * (i + round));
        ASSERT_EQ(x.data_as<float>()[i], want) << "rank " << r << " round " << round << " element " << i;
      }
      Tensor part = filled({2, 3}, [&](int64_t i) { return static_cast<float>(r * 10 + i); });
      Tensor all = Tensor::zeros(DType::kF32, {2, 3 * n});
      comm.all_gather_columns(part, all);
      for (int64_t row = 0; row < 2; ++row) {
        for (int64_t col = 0; col < 3 * n; ++col) {
          const int64_t owner = col / 3;
          ASSERT_EQ(all.data_as<float>()[row * 3 * n + col], static_cast<float>(owner * 10 + row * 3 + col % 3));
        }
      }
      const int root = round % n;
      Tensor b = filled({4}, [&](int64_t i) { return static_cast<float>(r * 1000 + i); });
      comm.broadcast(b, root);
      for (int64_t i = 0; i < 4; ++i) ASSERT_EQ(b.data_as<float>()[i], static_cast<float>(root * 1000 + i));
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, SocketCommunicatorTest, ::testing::Values(2, 3));

// Sums of values that round differently in another order: the socket group adds in rank order, as the in-process
// group does, so both give the same bits on every rank.
TEST(SocketCommunicator, SumsBitIdenticallyToTheInProcessGroup) {
  const int n = 3;
  const auto value = [](int r, int64_t i) { return 1.0f / static_cast<float>(3 + 7 * r + i) * (r == 1 ? 1e7f : 1.0f); };
  std::vector<std::vector<float>> in_process(n), socket(n);
  InProcessGroup group(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      Tensor x = filled({64}, [&](int64_t i) { return value(r, i); });
      group.rank(r).all_reduce_sum(x);
      in_process[static_cast<size_t>(r)].assign(x.data_as<float>(), x.data_as<float>() + 64);
    });
  }
  for (auto& t : threads) t.join();
  auto comms = communicators(n);
  run_ranks(comms, [&](Communicator& comm) {
    Tensor x = filled({64}, [&](int64_t i) { return value(comm.rank(), i); });
    comm.all_reduce_sum(x);
    socket[static_cast<size_t>(comm.rank())].assign(x.data_as<float>(), x.data_as<float>() + 64);
  });
  for (int r = 0; r < n; ++r) EXPECT_EQ(socket[static_cast<size_t>(r)], in_process[0]) << "rank " << r;
}

TEST(SocketCommunicator, RanksThatDisagreeFailInsteadOfMixingData) {
  auto comms = communicators(2);
  std::string errors[2];
  run_ranks(comms, [&](Communicator& comm) {
    try {
      Tensor x = filled({comm.rank() == 0 ? 4 : 5}, [](int64_t) { return 1.0f; });
      comm.all_reduce_sum(x);
    } catch (const Error& e) {
      errors[comm.rank()] = e.what();
      // Rank 0 found the mismatch; the worker waits for the result until the group is torn down.
      if (comm.rank() == 0) comms[0]->abort();
    }
  });
  EXPECT_THAT(errors[0], HasSubstr("rank 1 brought 5 elements, rank 0 4"));
  EXPECT_THAT(errors[1], HasSubstr("all_reduce_sum"));
}

TEST(SocketCommunicator, AbortWakesARankBlockedInACollective) {
  auto comms = communicators(2);
  std::string error;
  const auto start = std::chrono::steady_clock::now();
  std::thread worker([&] {
    try {
      Tensor x = filled({8}, [](int64_t) { return 1.0f; });
      comms[1]->all_reduce_sum(x);  // rank 0 never comes
    } catch (const Error& e) {
      error = e.what();
    }
  });
  std::this_thread::sleep_for(100ms);
  comms[0]->abort();  // rank 0's connections end: the worker's read sees it
  worker.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
  EXPECT_THAT(error, HasSubstr("lost the connection"));
  Tensor x = filled({8}, [](int64_t) { return 1.0f; });
  EXPECT_THROW(comms[0]->all_reduce_sum(x), Error);
}

TEST(TcpLink, EndpointsAreParsedOrRefusedByFlag) {
  EXPECT_EQ(parse_endpoint("127.0.0.1:29500", "--connect", false).port, 29500);
  EXPECT_EQ(parse_endpoint("[::1]:7", "--connect", false).host, "::1");
  EXPECT_EQ(parse_endpoint("localhost:0", "--listen-ranks", true).port, 0);
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", ":80", "host:http", "host:70000", "::1:80", "host:-1"}) {
    try {
      (void)parse_endpoint(bad, "--connect", false);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest) << bad;
      EXPECT_THAT(e.what(), HasSubstr("--connect")) << bad;
      EXPECT_THAT(e.what(), HasSubstr("HOST:PORT")) << bad;
    }
  }
  EXPECT_THROW((void)parse_endpoint("host:0", "--connect", false), Error);
}

TEST(TcpLink, APortInUseIsRefused) {
  TcpListener first({"127.0.0.1", 0});
  try {
    TcpListener second({"127.0.0.1", first.port()});
    ADD_FAILURE() << "bound port " << first.port() << " twice";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("already in use"));
  }
}

TEST(TcpLink, WaitsEndAtTheirDeadline) {
  TcpListener listener({"127.0.0.1", 0});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(listener.accept(start + 200ms), nullptr);
  auto client = connect_tcp({"127.0.0.1", listener.port()}, 5s);
  auto server = listener.accept(std::chrono::steady_clock::now() + 5s);
  ASSERT_NE(server, nullptr);
  try {
    (void)server->receive(200ms);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("timed out"));
  }
  const std::vector<uint8_t> hello{1, 2, 3};
  client->send(hello);
  EXPECT_EQ(server->receive(5s), hello);
  client.reset();  // the peer goes away
  try {
    (void)server->receive();
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("lost the connection"));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}

TEST(TcpLink, ConnectingToNothingTimesOut) {
  int port = 0;
  {
    TcpListener listener({"127.0.0.1", 0});
    port = listener.port();
  }
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)connect_tcp({"127.0.0.1", port}, 500ms);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot connect to 127.0.0.1:"));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

}  // namespace
}  // namespace loom::backend::cpu
