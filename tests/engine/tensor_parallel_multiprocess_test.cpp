// Tensor parallelism across processes on the CPU: rank 0 here or in `loom run --listen-ranks`, rank 1 a `loom
// tp-worker` child process, joined over localhost TCP (the socket communicator, the step codec, the remote-rank
// driver). Proven: the two-process group gives the same greedy tokens as the snapshot loaded whole and as the
// reference (transformers, tests/golden/models/*_expected) and prefill logits within the CPU golden tolerance; `loom
// run` split over two processes prints what one process prints, and `loom serve` split so answers a chat request with
// that completion (then both processes exit 0 on SIGTERM); a worker killed between steps makes the next step
// fail on rank 0 with rank 1 named (no hang) and leaves the model unusable; a worker with another model or rank count
// is refused on both sides; a missing worker times out saying how many ranks joined; bad addresses and a port in use
// are refused before anything loads.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/socket_communicator.h"
#include "backend/tcp_link.h"
#include "model/model_test_util.h"
#include "model/registry.h"
#include "model/remote_ranks.h"
#include "model/tensor_parallel_model.h"
#include "support/greedy_text.h"
#include "support/loom_process.h"
#include "support/tensor_parallel_golden.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using namespace std::chrono_literals;
using test_support::LoomChild;
using test_support::quoted;
using test_support::run_loom;
using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr double kLogitTolerance = 1e-4;
// Generous: a loaded two-core machine starts, loads and connects a worker in well under this.
constexpr auto kJoinTimeout = 120s;

std::filesystem::path snapshot_dir(const std::string& name) {
  return std::filesystem::path(LOOM_SOURCE_DIR) / "tests/golden/snapshots" / name;
}

std::string worker_arguments(const std::filesystem::path& model, int port, int ranks = 2, int rank = 1) {
  return "tp-worker --device cpu --model " + quoted(model) + " --rank " + std::to_string(rank) + " --tensor-parallel " +
         std::to_string(ranks) + " --connect 127.0.0.1:" + std::to_string(port) + " --connect-timeout 120";
}

// Rank 0 in this process, rank 1 a `loom tp-worker` child loading `worker_model`.
struct TwoProcesses {
  std::unique_ptr<LoomChild> worker;
  std::unique_ptr<TensorParallelModel> model;
};

TwoProcesses start_two_processes(const weights::Snapshot& snapshot, const std::filesystem::path& worker_model) {
  backend::TcpListener listener({"127.0.0.1", 0});
  TwoProcesses group;
  group.worker = std::make_unique<LoomChild>(worker_arguments(worker_model, listener.port()));
  JoinOptions join;
  join.timeout = kJoinTimeout;
  JoinedWorkers joined = accept_workers(listener, fingerprint_of(snapshot, 2), join);
  group.model = std::make_unique<TensorParallelModel>(
      backend::cpu::make_socket_process_group(0, 2, std::move(joined.data)),
      [&snapshot](int, backend::Backend& backend, const Sharding& sharding) {
        return load_model(snapshot, backend, sharding);
      },
      std::make_unique<RemoteRanks>(std::move(joined.control)));
  return group;
}

class TensorParallelTwoProcesses : public ::testing::TestWithParam<const char*> {};

TEST_P(TensorParallelTwoProcesses, MatchOneProcessAndTheReference) {
  const std::string name = GetParam();
  const auto expected = testing::golden_dir() / (name + "_expected");
  if (!std::filesystem::exists(expected / "cases.json")) GTEST_SKIP() << "missing " << expected;
  const auto snapshot = weights::Snapshot::open(testing::golden_dir() / name);
  backend::cpu::CpuBackend cpu;
  const std::unique_ptr<Model> whole = load_model(snapshot, cpu);
  TwoProcesses split = start_two_processes(snapshot, testing::golden_dir() / name);
  ASSERT_EQ(split.model->ranks(), 2);
  EXPECT_GT(test_support::expect_split_matches_whole(expected, *whole, *split.model, kLogitTolerance), 0)
      << "no text-only case in " << expected;
  EXPECT_FALSE(split.model->failed());
  // Unloading tells the worker to exit, and it does so cleanly.
  split.model.reset();
  const auto exit = split.worker->wait(60s);
  EXPECT_EQ(exit.status, 0) << exit.err;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelTwoProcesses,
                         ::testing::Values("tiny_qwen3", "tiny_gemma3_vlm", "tiny_qwen3vl", "tiny_gemma4_e2b"));

TEST(TensorParallelProcesses, AKilledWorkerFailsTheNextStepWithItsRankNamed) {
  const auto snapshot = weights::Snapshot::open(testing::golden_dir() / "tiny_qwen3");
  TwoProcesses split = start_two_processes(snapshot, testing::golden_dir() / "tiny_qwen3");
  TensorParallelModel& model = *split.model;
  backend::KvCache cache({.layers = model.info().kv, .blocks = 4}, model.backend());
  std::vector<int32_t> table;
  (void)test_support::text_step(model, cache, table, 0, {1, 2, 3, 4}, false);
  split.worker->kill();
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)test_support::text_step(model, cache, table, 4, {5}, false);
    ADD_FAILURE() << "a step without rank 1 succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInternal);
    EXPECT_THAT(e.what(), HasSubstr("rank 1"));
    EXPECT_THAT(e.what(), AnyOf(HasSubstr("lost the connection"), HasSubstr("is gone")));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 60s);
  EXPECT_TRUE(model.failed());
  try {
    (void)test_support::text_step(model, cache, table, 4, {5}, false);
    ADD_FAILURE() << "a broken group ran a step";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("load the model again"));
  }
}

// The port rank 0 printed when it started listening.
int listening_port(LoomChild& rank0) {
  if (!rank0.wait_for_stderr("tensor-parallel worker on 127.0.0.1:", kJoinTimeout)) return -1;
  std::smatch match;
  const std::string err = rank0.err();
  if (!std::regex_search(err, match, std::regex("worker on 127\\.0\\.0\\.1:([0-9]+)"))) return -1;
  return std::stoi(match[1]);
}

TEST(TensorParallelProcesses, LoomRunOverTwoProcessesPrintsWhatOneProcessPrints) {
  const std::string run = "run --device cpu --model " + quoted(snapshot_dir("tiny_chat")) +
                          " --prompt 'Tell me a story' --max-tokens 12 --output json";
  const auto one = run_loom(run);
  ASSERT_EQ(one.status, 0) << one.err;
  LoomChild rank0(run + " --tensor-parallel 2 --listen-ranks 127.0.0.1:0 --rank-timeout 120");
  const int port = listening_port(rank0);
  ASSERT_GT(port, 0) << rank0.err();
  LoomChild worker(worker_arguments(snapshot_dir("tiny_chat"), port));
  const auto split = rank0.wait(180s);
  ASSERT_EQ(split.status, 0) << split.err << "\nworker:\n" << worker.err();
  const auto want = nlohmann::json::parse(one.out);
  const auto got = nlohmann::json::parse(split.out);
  EXPECT_EQ(got["prompt_token_ids"], want["prompt_token_ids"]);
  EXPECT_EQ(got["completion_token_ids"], want["completion_token_ids"]);
  EXPECT_EQ(got["completion_text"], want["completion_text"]);
  EXPECT_EQ(want["completion_token_ids"].size(), 12u);
  const auto worker_exit = worker.wait(60s);
  EXPECT_EQ(worker_exit.status, 0) << worker_exit.err;
  EXPECT_THAT(worker_exit.err, HasSubstr("rank 1 of 2 joined"));
}

TEST(TensorParallelProcesses, LoomServeOverTwoProcessesAnswersAsOneProcessRuns) {
  if (std::system("command -v curl > /dev/null 2>&1") != 0) GTEST_SKIP() << "curl is not installed";
  const auto one = run_loom("run --device cpu --model " + quoted(snapshot_dir("tiny_chat")) +
                            " --prompt 'Tell me a story' --max-tokens 12 --output json");
  ASSERT_EQ(one.status, 0) << one.err;
  LoomChild server("serve --device cpu --port 0 --model " + quoted(snapshot_dir("tiny_chat")) +
                   " --tensor-parallel 2 --listen-ranks 127.0.0.1:0 --rank-timeout 120");
  const int rank_port = listening_port(server);
  ASSERT_GT(rank_port, 0) << server.err();
  std::smatch match;
  const std::string err = server.err();
  ASSERT_TRUE(std::regex_search(err, match, std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"))) << err;
  const std::string http_port = match[1];
  LoomChild worker(worker_arguments(snapshot_dir("tiny_chat"), rank_port));
  // The request waits for the model, which waits for the worker.
  const std::string body =
      R"({"model":"tiny_chat","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":12,)"
      R"("temperature":0})";
  const auto reply = test_support::run_shell("curl -s -m 120 -H 'Content-Type: application/json' -d '" + body +
                                             "' http://127.0.0.1:" + http_port + "/v1/chat/completions");
  ASSERT_EQ(reply.status, 0) << server.err() << "\nworker:\n" << worker.err();
  const auto json = nlohmann::json::parse(reply.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << reply.out;
  EXPECT_EQ(json["choices"][0]["message"]["content"], nlohmann::json::parse(one.out)["completion_text"]) << reply.out;
  EXPECT_EQ(json["usage"]["completion_tokens"], 12) << reply.out;
  server.signal(SIGTERM);
  const auto server_exit = server.wait(60s);
  EXPECT_EQ(server_exit.status, 0) << server_exit.err;
  const auto worker_exit = worker.wait(60s);
  EXPECT_EQ(worker_exit.status, 0) << worker_exit.err;
}

TEST(TensorParallelProcesses, AWorkerWithAnotherModelOrRankCountIsRefused) {
  const std::string run =
      "run --device cpu --model " + quoted(snapshot_dir("tiny_chat")) +
      " --prompt hi --max-tokens 2 --tensor-parallel 2 --listen-ranks 127.0.0.1:0 --rank-timeout 120";
  {
    LoomChild rank0(run);
    const int port = listening_port(rank0);
    ASSERT_GT(port, 0) << rank0.err();
    LoomChild worker(worker_arguments(testing::golden_dir() / "tiny_qwen3", port));
    const auto r0 = rank0.wait(120s);
    const auto w = worker.wait(120s);
    EXPECT_EQ(r0.status, 1);
    EXPECT_THAT(r0.err, HasSubstr("loaded another model (Qwen3ForCausalLM"));
    EXPECT_THAT(r0.err, HasSubstr("than rank 0 (Gemma3ForConditionalGeneration, 2 layers, hidden 64, 2 ranks)"));
    EXPECT_EQ(w.status, 1);
    EXPECT_THAT(w.err, HasSubstr("rank 0 refused this worker"));
  }
  {
    LoomChild rank0(run);
    const int port = listening_port(rank0);
    ASSERT_GT(port, 0) << rank0.err();
    LoomChild worker(worker_arguments(snapshot_dir("tiny_chat"), port, 3, 2));
    const auto r0 = rank0.wait(120s);
    const auto w = worker.wait(120s);
    EXPECT_EQ(r0.status, 1);
    EXPECT_THAT(r0.err, HasSubstr("runs with --tensor-parallel 3, rank 0 with 2"));
    EXPECT_EQ(w.status, 1);
    EXPECT_THAT(w.err, HasSubstr("rank 0 refused this worker"));
  }
}

TEST(TensorParallelProcesses, RankZeroTimesOutSayingHowManyRanksJoined) {
  const auto start = std::chrono::steady_clock::now();
  const auto run = run_loom("run --device cpu --model " + quoted(snapshot_dir("tiny_chat")) +
                            " --prompt hi --tensor-parallel 3 --listen-ranks 127.0.0.1:0 --rank-timeout 1");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("timed out after 1 s waiting for tensor-parallel workers on 127.0.0.1:"));
  EXPECT_THAT(run.err, HasSubstr("1 of 3 ranks joined"));
  EXPECT_THAT(run.err, HasSubstr("missing ranks 1, 2"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 60s);
}

TEST(TensorParallelProcesses, BadAddressesAndBusyPortsAreRefused) {
  const std::string run = "run --device cpu --model " + quoted(snapshot_dir("tiny_chat")) + " --prompt hi";
  auto r = run_loom(run + " --tensor-parallel 2 --listen-ranks nowhere");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("--listen-ranks 'nowhere': no port"));

  r = run_loom(run + " --listen-ranks 127.0.0.1:0");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("--listen-ranks needs --tensor-parallel 2 or more"));

  backend::TcpListener taken({"127.0.0.1", 0});
  r = run_loom(run + " --tensor-parallel 2 --listen-ranks 127.0.0.1:" + std::to_string(taken.port()));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("the address is already in use"));

  const std::string worker = "tp-worker --device cpu --model " + quoted(snapshot_dir("tiny_chat"));
  r = run_loom(worker + " --rank 0 --tensor-parallel 2 --connect 127.0.0.1:1");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("--rank must be 1 to 1"));
  r = run_loom(worker + " --rank 1 --tensor-parallel 2 --connect 127.0.0.1");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("--connect '127.0.0.1': no port"));
  // Nothing listens: the worker gives up at its deadline.
  int free_port = 0;
  {
    backend::TcpListener gone({"127.0.0.1", 0});
    free_port = gone.port();
  }
  r = run_loom(worker +
               " --rank 1 --tensor-parallel 2 --connect-timeout 1 --connect 127.0.0.1:" + std::to_string(free_port));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot connect to 127.0.0.1:"));
}

}  // namespace
}  // namespace loom::model
