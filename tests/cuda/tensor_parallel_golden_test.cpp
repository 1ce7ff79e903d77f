// Tensor parallelism end to end on two GPUs: every tiny golden snapshot, loaded as a TP=2 group (NCCL, one thread per
// GPU), gives the reference's prefill logits (transformers, tests/golden/models/*_expected, within the GPU golden
// tolerance) and the same greedy tokens as the same snapshot on one GPU and as the reference. Text-only cases (the
// vision tower runs whole on rank 0 and is covered by the one-GPU golden tests). Skips with fewer than two GPUs, when a
// fixture is missing, and while a family cannot be sharded yet.
#ifdef LOOM_HAS_NCCL

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nccl_communicator.h"
#include "model/model_test_util.h"
#include "model/registry.h"
#include "model/tensor_parallel_model.h"
#include "support/greedy_text.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

using nlohmann::json;
using test_support::greedy_text;

constexpr double kLogitTolerance = 1e-3;

class TensorParallelGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(TensorParallelGolden, TwoGpusMatchOneGpuAndTheReference) {
  if (backend::cuda::device_count() < 2) GTEST_SKIP() << "needs 2 GPUs";
  const std::string name = GetParam();
  const auto dir = testing::golden_dir() / name;
  const auto expected = testing::golden_dir() / (name + "_expected");
  if (!std::filesystem::exists(expected / "cases.json")) GTEST_SKIP() << "missing " << expected;
  const auto snapshot = weights::Snapshot::open(dir);
  backend::cuda::CudaBackend gpu(0);
  const std::unique_ptr<Model> single = load_model(snapshot, gpu);
  std::unique_ptr<TensorParallelModel> split;
  try {
    split = load_tensor_parallel(snapshot, backend::cuda::make_nccl_group({0, 1}));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kUnsupported) GTEST_SKIP() << e.what();
    throw;
  }
  const int64_t vocab = single->info().vocab_size;
  ASSERT_EQ(split->info().vocab_size, vocab);
  const json cases = json::parse(std::ifstream(expected / "cases.json"));
  int checked = 0;
  for (const json& c : cases["cases"]) {
    const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const int32_t image_token = single->info().image_token_id;
    if (image_token >= 0 && std::find(prompt.begin(), prompt.end(), image_token) != prompt.end()) continue;
    if (c.contains("rope_delta") && c["rope_delta"].get<int64_t>() != 0) continue;
    const std::string case_name = c["name"].get<std::string>();
    const std::vector<int32_t> reference = c["completion_ids"].get<std::vector<int32_t>>();
    Tensor logits1, logits2;
    const std::vector<int32_t> ids1 = greedy_text(*single, prompt, reference.size(), logits1);
    const std::vector<int32_t> ids2 = greedy_text(*split, prompt, reference.size(), logits2);
    EXPECT_EQ(ids2, ids1) << case_name;
    EXPECT_EQ(ids2, reference) << case_name;
    const std::vector<float> want = testing::read_f32_file(expected / c["logits_file"].get<std::string>());
    ASSERT_EQ(logits2.shape(), (Shape{static_cast<int64_t>(prompt.size()), vocab})) << case_name;
    ASSERT_EQ(static_cast<int64_t>(want.size()), logits2.elements()) << case_name;
    for (int64_t r = 0; r < logits2.dim(0); ++r) {
      EXPECT_LE(testing::row_relative_error(logits2.data_as<float>() + r * vocab, want.data() + r * vocab, vocab),
                kLogitTolerance)
          << case_name << " position " << r;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no text-only case in " << expected;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelGolden,
                         ::testing::Values("tiny_qwen3", "tiny_gemma3_vlm", "tiny_gemma4_e2b", "tiny_qwen3vl",
                                           "tiny_qwen3vl_moe", "tiny_gemma4_moe"));

}  // namespace
}  // namespace loom::model

#endif  // LOOM_HAS_NCCL
