#pragma once
// Checks shared by the CUDA golden tests of the Gemma 4 and Qwen3 families (tests/cuda/*_golden_test.cpp): a prefill
// chunk's logits against the reference rows, and greedy decoding against the reference ids and top-5 logprobs. The
// tolerances are the GPU ones (see each test's header for why).

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/model_test_util.h"

namespace loom::model::testing {

// Host logits [rows, vocab] of prompt positions [begin, begin + rows) against the reference's; returns the last row.
inline std::vector<float> expect_prefill_logits(const Tensor& logits, const std::vector<float>& want, int64_t begin,
                                                int64_t vocab, double tolerance, const std::string& name) {
  EXPECT_EQ(logits.device().kind, DeviceKind::kCpu) << name << ": forward returns host logits";
  const int64_t rows = logits.dim(0);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_LE(row_relative_error(logits.data_as<float>() + r * vocab, want.data() + (begin + r) * vocab, vocab),
              tolerance)
        << name << " position " << begin + r;
  }
  return {logits.data_as<float>() + (rows - 1) * vocab, logits.data_as<float>() + rows * vocab};
}

// Greedy decoding from the prompt's last logits: at step k the reference's top-5 logprobs must match ours within
// `tolerance`, the argmax is fed back through `decode(id, k)` (which returns the next host logits [1, vocab]), and
// the ids must equal the reference completion.
inline void expect_greedy(std::vector<float> last, const nlohmann::json& c, int64_t vocab, double tolerance,
                          const std::function<Tensor(int32_t, size_t)>& decode, const std::string& name) {
  const nlohmann::json& steps = c["steps"];
  std::vector<int32_t> completion;
  for (size_t k = 0; k < steps.size(); ++k) {
    const std::vector<double> lp = log_softmax(last.data(), vocab);
    for (const nlohmann::json& entry : steps[k]["top"]) {
      const int id = entry[0].get<int>();
      EXPECT_NEAR(lp[static_cast<size_t>(id)], entry[1].get<double>(), tolerance)
          << name << " step " << k << " id " << id;
    }
    completion.push_back(static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin()));
    if (k + 1 == steps.size()) break;
    const Tensor logits = decode(completion.back(), k);
    EXPECT_EQ(logits.shape(), (Shape{1, vocab})) << name << " step " << k;
    if (logits.shape() != Shape{1, vocab}) return;
    last.assign(logits.data_as<float>(), logits.data_as<float>() + vocab);
  }
  EXPECT_EQ(completion, c["completion_ids"].get<std::vector<int32_t>>()) << name;
}

}  // namespace loom::model::testing
