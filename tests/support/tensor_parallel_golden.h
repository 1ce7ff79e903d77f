#pragma once
// The check both tensor-parallel golden tests run (CPU ranks in tests/engine, GPU ranks in tests/cuda): on every
// text-only case of a golden fixture, the split model gives the same greedy tokens as the whole model and as the
// reference (transformers, tests/golden/models/*_expected), runs its collectives every decode step, and its prefill
// logits are within `tolerance` of the reference's.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/model_test_util.h"
#include "model/tensor_parallel_model.h"
#include "support/greedy_text.h"

namespace loom::test_support {

// Returns the number of cases checked (cases with images or a non-zero rope delta are left to the one-device tests).
inline int expect_split_matches_whole(const std::filesystem::path& expected, model::Model& whole,
                                      model::TensorParallelModel& split, double tolerance) {
  const int64_t vocab = whole.info().vocab_size;
  EXPECT_EQ(split.info().vocab_size, vocab);
  const nlohmann::json cases = nlohmann::json::parse(std::ifstream(expected / "cases.json"));
  int checked = 0;
  for (const nlohmann::json& c : cases["cases"]) {
    const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const int32_t image_token = whole.info().image_token_id;
    if (image_token >= 0 && std::find(prompt.begin(), prompt.end(), image_token) != prompt.end()) continue;
    if (c.contains("rope_delta") && c["rope_delta"].get<int64_t>() != 0) continue;
    const std::string case_name = c["name"].get<std::string>();
    const std::vector<int32_t> reference = c["completion_ids"].get<std::vector<int32_t>>();
    Tensor whole_logits, split_logits;
    const std::vector<int32_t> whole_ids = greedy_text(whole, prompt, reference.size(), whole_logits);
    const std::vector<int32_t> split_ids = greedy_text(split, prompt, reference.size(), split_logits);
    EXPECT_EQ(split_ids, whole_ids) << case_name;
    EXPECT_EQ(split_ids, reference) << case_name;
    EXPECT_GT(split.last_step_collectives().all_reduces, 0) << case_name;
    const std::vector<float> want = model::testing::read_f32_file(expected / c["logits_file"].get<std::string>());
    EXPECT_EQ(split_logits.shape(), (Shape{static_cast<int64_t>(prompt.size()), vocab})) << case_name;
    if (static_cast<int64_t>(want.size()) != split_logits.elements()) {
      ADD_FAILURE() << case_name << ": " << want.size() << " reference logits, " << split_logits.elements() << " split";
      continue;
    }
    for (int64_t r = 0; r < split_logits.dim(0); ++r) {
      EXPECT_LE(
          model::testing::row_relative_error(split_logits.data_as<float>() + r * vocab, want.data() + r * vocab, vocab),
          tolerance)
          << case_name << " position " << r;
    }
    ++checked;
  }
  return checked;
}

}  // namespace loom::test_support
