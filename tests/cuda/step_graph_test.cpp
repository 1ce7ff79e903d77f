// Decode steps recorded into CUDA graphs and replayed give the same logits, bit for bit, as the same steps run op by
// op: several sequences decoding together, block tables growing past a capacity (a new recording), a sequence leaving
// the batch (another shape), on every golden family. The graph replays the very kernels the eager step launches, on
// the same inputs, so any difference is a recording that missed a changing value (a position, a table entry, a
// length) — exactly what this test exists to catch. Correctness against transformers is the golden tests' job; they
// decode through graphs too, since graphs are on by default.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "backend/cuda/cuda_backend.h"
#include "model/model_test_util.h"
#include "model/registry.h"
#include "weights/snapshot.h"

namespace loom::model {
namespace {

// Sequences of one model in one cache, stepped together.
class Decoder {
 public:
  Decoder(Model& model, int sequences, int64_t max_tokens)
      : model_(model),
        cache_({.layers = model.info().kv, .blocks = sequences * (max_tokens / 2 + 2), .block_size = 2},
               model.backend()),
        tables_(static_cast<size_t>(sequences)),
        lengths_(static_cast<size_t>(sequences), 0) {}
  ~Decoder() {
    for (auto& table : tables_) cache_.release(table);
  }

  // One step: `ids[s]` are the new tokens of sequence s (a prompt or one decode token); sequences with no ids sit out.
  // Returns the last-row logits of each stepping sequence, in order.
  std::vector<std::vector<float>> step(const std::vector<std::vector<int32_t>>& ids) {
    backend::Batch batch;
    for (size_t s = 0; s < ids.size(); ++s) {
      if (ids[s].empty()) continue;
      const auto count = static_cast<int64_t>(ids[s].size());
      cache_.reserve(tables_[s], lengths_[s] + count);
      batch.sequences.push_back(
          {.token_offset = batch.tokens(), .token_count = count, .kv_start = lengths_[s], .block_table = tables_[s]});
      batch.token_ids.insert(batch.token_ids.end(), ids[s].begin(), ids[s].end());
      lengths_[s] += count;
    }
    // Positions axis-major: every axis holds the plain token index for text.
    const int axes = model_.info().position_axes;
    batch.position_axes = axes;
    batch.positions.resize(static_cast<size_t>(axes) * static_cast<size_t>(batch.tokens()));
    for (const backend::SequenceSlice& seq : batch.sequences) {
      for (int64_t i = 0; i < seq.token_count; ++i) {
        for (int axis = 0; axis < axes; ++axis) {
          batch.positions[static_cast<size_t>(axis * batch.tokens() + seq.token_offset + i)] =
              static_cast<int32_t>(seq.kv_start + i);
        }
      }
    }
    const Tensor logits = model_.forward({.batch = &batch}, cache_);
    const int64_t vocab = model_.info().vocab_size;
    std::vector<std::vector<float>> rows;
    for (int64_t r = 0; r < logits.dim(0); ++r) {
      rows.emplace_back(logits.data_as<float>() + r * vocab, logits.data_as<float>() + (r + 1) * vocab);
    }
    return rows;
  }

 private:
  Model& model_;
  backend::KvCache cache_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<int64_t> lengths_;
};

int32_t argmax(const std::vector<float>& row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

struct Family {
  const char* snapshot;
  // Dense families record their decode steps. The MoE ones route tokens on the host (the router's choice is read
  // back mid-step), which a recording cannot contain: their recording is refused and they stay eager.
  bool records;
};

class StepGraphTest : public ::testing::TestWithParam<Family> {};

TEST_P(StepGraphTest, ReplayedDecodeStepsEqualEagerOnesBitForBit) {
  if (backend::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU";
  const char* name = GetParam().snapshot;
  const auto dir = testing::golden_dir() / name;
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "fixture " << dir << " absent";
  const auto snapshot = weights::Snapshot::open(dir);
  backend::cuda::CudaBackend graph_gpu(0), eager_gpu(0);
  eager_gpu.set_step_graphs(false);
  const std::unique_ptr<Model> graphed = load_model(snapshot, graph_gpu);
  const std::unique_ptr<Model> eager = load_model(snapshot, eager_gpu);
  const int64_t vocab = graphed->info().vocab_size;

  constexpr int kSequences = 3;
  constexpr int kSteps = 40;  // with 2-token blocks the tables pass 16 entries: the capacity doubles mid-run
  Decoder a(*graphed, kSequences, 64), b(*eager, kSequences, 64);
  std::vector<std::vector<int32_t>> prompts = {{2, 5, 9, 14, 3}, {2, 7}, {2, 11, 4, 8, 1, 6, 12, 10, 13}};
  for (auto& prompt : prompts) {
    for (int32_t& id : prompt) id = static_cast<int32_t>(id % vocab);
  }
  std::vector<std::vector<float>> last_a = a.step(prompts), last_b = b.step(prompts);
  ASSERT_EQ(last_a, last_b) << "prefill";
  std::vector<bool> active(kSequences, true);
  for (int k = 0; k < kSteps; ++k) {
    if (k == kSteps / 2) active[1] = false;  // one sequence finishes: a batch of two from here on
    std::vector<std::vector<int32_t>> next(kSequences);
    size_t row = 0;
    for (int s = 0; s < kSequences; ++s) {
      if (!active[static_cast<size_t>(s)]) continue;
      next[static_cast<size_t>(s)] = {argmax(last_a[row])};
      ++row;
    }
    std::vector<std::vector<float>> step_a = a.step(next), step_b = b.step(next);
    ASSERT_EQ(step_a.size(), step_b.size());
    for (size_t r = 0; r < step_a.size(); ++r) {
      ASSERT_EQ(0, std::memcmp(step_a[r].data(), step_b[r].data(), step_a[r].size() * sizeof(float)))
          << name << ": step " << k << " row " << r;
    }
    last_a = std::move(step_a);
  }

  const StepCounts g = graphed->step_counts(), e = eager->step_counts();
  EXPECT_EQ(e.recorded + e.replayed, 0) << "graphs were turned off";
  if (!GetParam().records) {
    EXPECT_GE(g.refused, 1) << name;
    EXPECT_EQ(g.recorded + g.replayed, 0) << name;
    return;
  }
  EXPECT_EQ(g.refused, 0) << name << ": a decode step could not be recorded";
  // Three shapes (3 sequences at capacity 16 and 32, 2 sequences): each recorded once, the rest replayed.
  EXPECT_GE(g.recorded, 3) << name;
  EXPECT_GE(g.replayed, kSteps - 2 * g.recorded) << name;
}

INSTANTIATE_TEST_SUITE_P(Families, StepGraphTest,
                         ::testing::Values(Family{"tiny_gemma3_vlm", true}, Family{"tiny_gemma3_vlm_affine4", true},
                                           Family{"tiny_gemma4_e2b", true}, Family{"tiny_gemma4_moe", false},
                                           Family{"tiny_qwen3vl", true}, Family{"tiny_qwen3vl_moe", false}));

}  // namespace
}  // namespace loom::model
