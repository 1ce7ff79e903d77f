// `--tensor-parallel` and `--devices` on `loom run`, `loom serve` and `loom bench`, through the binary: what cannot
// run is refused before anything loads, with a message naming the flag; and `loom bench --tensor-parallel 1` (a group
// of one rank, the baseline of a tensor-parallel comparison) reports its figures. These tests run where no GPU is
// present (the build machines): every GPU count they rely on is 0.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "support/loom_process.h"

namespace loom::engine {
namespace {

using test_support::run_loom;
using ::testing::HasSubstr;

std::string tiny_chat() {
  return test_support::quoted(std::filesystem::path(LOOM_SOURCE_DIR) / "tests/golden/snapshots/tiny_chat");
}

bool has_gpu() {
  // `loom run --device cuda` on a snapshot that does not exist fails on the folder first; the refusal below is only
  // certain without a GPU.
  const auto run = run_loom("run --model " + tiny_chat() + " --prompt hi --device cuda --tensor-parallel 64");
  return run.err.find("0 available") == std::string::npos && run.err.find("without the CUDA") == std::string::npos &&
         run.err.find("without it") == std::string::npos;
}

TEST(TensorParallelCli, RunRefusesRankCountsAndDeviceListsThatCannotWork) {
  if (has_gpu()) GTEST_SKIP() << "these refusals assume no GPU";
  auto run = run_loom("run --model " + tiny_chat() + " --prompt hi --tensor-parallel 0");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--tensor-parallel must be at least 1, got 0"));

  run = run_loom("run --model " + tiny_chat() + " --prompt hi --tensor-parallel 2");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--tensor-parallel 2 needs 2 GPUs, 0 available"));

  run = run_loom("run --model " + tiny_chat() + " --prompt hi --device cuda --tensor-parallel 2");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--tensor-parallel 2 needs 2 GPUs, 0 available"));

  run = run_loom("run --model " + tiny_chat() + " --prompt hi --device cuda --tensor-parallel 2 --devices 0,1,2");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--devices lists 3 GPUs (0,1,2) but --tensor-parallel is 2"));

  run = run_loom("run --model " + tiny_chat() + " --prompt hi --device cuda --tensor-parallel 2 --devices 1,1");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--devices names GPU 1 twice"));

  run = run_loom("run --model " + tiny_chat() + " --prompt hi --device cpu --devices 0");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--devices names GPUs; it cannot be used with the CPU (--device cpu)"));

  run = run_loom("run --model " + tiny_chat() + " --prompt hi --device cuda --devices 3");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--devices names GPU 3, but no GPU is present"));

  run = run_loom("run --model " + tiny_chat() + " --prompt hi --tensor-parallel two");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("--tensor-parallel"));
}

TEST(TensorParallelCli, ServeRefusesSeveralModelsWithTensorParallelism) {
  if (has_gpu()) GTEST_SKIP() << "these refusals assume no GPU";
  auto run = run_loom("serve --port 0 --device cpu --tensor-parallel 2 --model a=" + tiny_chat() +
                      " --model b=" + tiny_chat());
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--tensor-parallel 2 serves one model"));
  EXPECT_THAT(run.err, HasSubstr("2 were given"));

  run = run_loom("serve --port 0 --tensor-parallel 4 --model " + tiny_chat());
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--tensor-parallel 4 needs 4 GPUs, 0 available"));
}

TEST(TensorParallelCli, BenchRefusesMoreRanksThanGpus) {
  if (has_gpu()) GTEST_SKIP() << "these refusals assume no GPU";
  const auto run = run_loom("bench --synthetic tiny --tensor-parallel 2");
  EXPECT_EQ(run.status, 1);
  EXPECT_THAT(run.err, HasSubstr("--tensor-parallel 2 needs 2 GPUs, 0 available"));
}

TEST(TensorParallelCli, BenchReportsTheTensorParallelFiguresOfOneRank) {
  if (has_gpu()) GTEST_SKIP() << "the one-rank baseline runs on the GPU there";
  const auto run = run_loom(
      "bench --synthetic tiny --format bf16 --tensor-parallel 1 --prompt-tokens 8 --gen-tokens 4 --streams 3 --json");
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j["ranks"], 1);
  EXPECT_EQ(j["hidden"], 128);
  EXPECT_EQ(j["batch1"]["logits_finite"], true);
  EXPECT_GT(j["batch1"]["decode_tokens_per_s"].get<double>(), 0);
  // Three streams of four tokens each, every one generated.
  EXPECT_EQ(j["streams"]["count"], 3);
  EXPECT_EQ(j["streams"]["tokens"], 12);
  EXPECT_GT(j["streams"]["decode_tokens_per_s"].get<double>(), 0);
  // One unsharded rank calls no collective.
  EXPECT_EQ(j["decode_step_collectives"]["all_reduces"], 0);
  EXPECT_EQ(j["all_reduce"]["ms_per_decode_step_batch1"], 0.0);
  EXPECT_TRUE(std::isfinite(j["all_reduce"]["us_batch1"].get<double>()));
}

}  // namespace
}  // namespace loom::engine
