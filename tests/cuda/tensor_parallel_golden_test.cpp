// Tensor parallelism end to end on two GPUs: every tiny golden snapshot, loaded as a TP=2 group (NCCL, one thread per
// GPU), gives the reference's prefill logits (transformers, tests/golden/models/*_expected, within the GPU golden
// tolerance) and the same greedy tokens as the same snapshot on one GPU and as the reference
// (support/tensor_parallel_golden.h). Text-only cases (the vision tower runs whole on rank 0 and is covered by the
// one-GPU golden tests). Skips with fewer than two GPUs and when a fixture is missing.
#ifdef LOOM_HAS_NCCL

#include "support/tensor_parallel_golden.h"

#include <gtest/gtest.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nccl_communicator.h"
#include "model/model_test_util.h"
#include "model/registry.h"
#include "model/tensor_parallel_model.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

constexpr double kLogitTolerance = 1e-3;

class TensorParallelGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(TensorParallelGolden, TwoGpusMatchOneGpuAndTheReference) {
  if (backend::cuda::device_count() < 2) GTEST_SKIP() << "needs 2 GPUs";
  const std::string name = GetParam();
  const auto expected = testing::golden_dir() / (name + "_expected");
  if (!std::filesystem::exists(expected / "cases.json")) GTEST_SKIP() << "missing " << expected;
  const auto snapshot = weights::Snapshot::open(testing::golden_dir() / name);
  backend::cuda::CudaBackend gpu(0);
  const std::unique_ptr<Model> whole = load_model(snapshot, gpu);
  const std::unique_ptr<TensorParallelModel> split =
      load_tensor_parallel(snapshot, backend::cuda::make_nccl_group({0, 1}));
  EXPECT_GT(test_support::expect_split_matches_whole(expected, *whole, *split, kLogitTolerance), 0)
      << "no text-only case in " << expected;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelGolden,
                         ::testing::Values("tiny_qwen3", "tiny_gemma3_vlm", "tiny_gemma4_e2b", "tiny_qwen3vl",
                                           "tiny_qwen3vl_moe", "tiny_gemma4_moe"));

}  // namespace
}  // namespace loom::model

#endif  // LOOM_HAS_NCCL
