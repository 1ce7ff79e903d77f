// The tensor-parallel runtime on real models, on the CPU: each tiny golden snapshot loaded as two ranks (CPU backends,
// the in-process communicator, rank threads driven by TensorParallelModel) gives the same greedy tokens as the same
// snapshot loaded whole, and as the reference (transformers, tests/golden/models/*_expected), and prefill logits
// within the CPU golden tolerance of the reference's (support/tensor_parallel_golden.h). Text-only cases. Skips when a
// fixture is missing.

#include "support/tensor_parallel_golden.h"

#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_rank_group.h"
#include "model/model_test_util.h"
#include "model/registry.h"
#include "model/tensor_parallel_model.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

constexpr double kLogitTolerance = 1e-4;

class TensorParallelCpuGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(TensorParallelCpuGolden, TwoRanksMatchOneAndTheReference) {
  const std::string name = GetParam();
  const auto expected = testing::golden_dir() / (name + "_expected");
  if (!std::filesystem::exists(expected / "cases.json")) GTEST_SKIP() << "missing " << expected;
  const auto snapshot = weights::Snapshot::open(testing::golden_dir() / name);
  backend::cpu::CpuBackend cpu;
  const std::unique_ptr<Model> whole = load_model(snapshot, cpu);
  const std::unique_ptr<TensorParallelModel> split = load_tensor_parallel(snapshot, backend::cpu::make_cpu_group(2));
  ASSERT_EQ(split->ranks(), 2);
  EXPECT_GT(test_support::expect_split_matches_whole(expected, *whole, *split, kLogitTolerance), 0)
      << "no text-only case in " << expected;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelCpuGolden,
                         ::testing::Values("tiny_qwen3", "tiny_gemma3_vlm", "tiny_gemma4_e2b", "tiny_qwen3vl",
                                           "tiny_qwen3vl_moe", "tiny_gemma4_moe"));

}  // namespace
}  // namespace loom::model
