// The Gemma 4 MoE branch (router + experts) against a float64 numpy evaluation of transformers' formulas:
// tests/golden/models/gemma4_moe_reference.json, written by tools/reference/gemma4_moe_reference.py.
#include "model/families/gemma4_moe.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "model_test_util.h"

namespace loom::model {
namespace {

using nlohmann::json;

Tensor f32_tensor(const json& values, Shape shape) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
  const std::vector<float> v = values.get<std::vector<float>>();
  EXPECT_EQ(static_cast<int64_t>(v.size()), t.elements());
  std::copy(v.begin(), v.end(), t.data_as<float>());
  return t;
}

weights::Weight f32_weight(const float* data, int64_t rows, int64_t cols) {
  weights::Weight w;
  w.rows = rows;
  w.cols = cols;
  w.values = Tensor::zeros(DType::kF32, {rows, cols});
  std::copy_n(data, rows * cols, w.values.data_as<float>());
  return w;
}

struct Example {
  json data = json::parse(std::ifstream(testing::golden_dir() / "gemma4_moe_reference.json"));
  int64_t tokens = data["tokens"], hidden = data["hidden"], experts = data["experts"], inter = data["intermediate"];
  int top_k = data["top_k"];
};

TEST(Gemma4Moe, RoutingMatchesReference) {
  const Example ex;
  const Tensor probs = f32_tensor(ex.data["probs"], {ex.tokens, ex.experts});
  const std::vector<float> per_expert = ex.data["per_expert_scale"].get<std::vector<float>>();
  const Gemma4Routing r = gemma4_route(probs, ex.top_k, per_expert);
  EXPECT_EQ(r.experts, ex.data["expected_experts"].get<std::vector<int32_t>>());
  const std::vector<double> want = ex.data["expected_weights"].get<std::vector<double>>();
  ASSERT_EQ(r.weights.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(r.weights[i], want[i], 1e-6) << i;
}

TEST(Gemma4Moe, TiesGoToTheLowerExpert) {
  const Tensor probs = f32_tensor(json{0.25, 0.25, 0.25, 0.25}, {1, 4});
  const std::vector<float> scale{1, 2, 3, 4};
  const Gemma4Routing r = gemma4_route(probs, 2, scale);
  EXPECT_EQ(r.experts, (std::vector<int32_t>{0, 1}));
  EXPECT_FLOAT_EQ(r.weights[0], 0.5f);
  EXPECT_FLOAT_EQ(r.weights[1], 1.0f);
}

TEST(Gemma4Moe, BlockMatchesReference) {
  const Example ex;
  backend::cpu::CpuBackend backend;
  Gemma4MoeWeights w;
  const Tensor proj = f32_tensor(ex.data["router_proj"], {ex.experts, ex.hidden});
  w.router = f32_weight(proj.data_as<float>(), ex.experts, ex.hidden);
  // The model folds hidden^-0.5 into the router scale at load.
  w.router_scale = f32_tensor(ex.data["router_scale"], {ex.hidden});
  for (float& v : w.router_scale.span<float>())
    v *= static_cast<float>(1.0 / std::sqrt(static_cast<double>(ex.hidden)));
  w.per_expert_scale = f32_tensor(ex.data["per_expert_scale"], {ex.experts});
  w.pre_feedforward_norm_2 = f32_tensor(ex.data["pre_feedforward_norm_2"], {ex.hidden});
  const Tensor gate_up = f32_tensor(ex.data["gate_up_proj"], {ex.experts, 2 * ex.inter, ex.hidden});
  const Tensor down = f32_tensor(ex.data["down_proj"], {ex.experts, ex.hidden, ex.inter});
  for (int64_t e = 0; e < ex.experts; ++e) {
    const float* gu = gate_up.data_as<float>() + e * 2 * ex.inter * ex.hidden;
    GatedMlpWeights expert;
    expert.gate.weight = f32_weight(gu, ex.inter, ex.hidden);
    expert.up.weight = f32_weight(gu + ex.inter * ex.hidden, ex.inter, ex.hidden);
    expert.down.weight = f32_weight(down.data_as<float>() + e * ex.hidden * ex.inter, ex.hidden, ex.inter);
    w.experts.push_back(std::move(expert));
  }
  const Tensor x = f32_tensor(ex.data["x"], {ex.tokens, ex.hidden});
  Tensor out = Tensor::zeros(DType::kF32, {ex.tokens, ex.hidden});
  Scratch scratch;
  gemma4_moe(backend, w, ex.top_k, ex.data["eps"].get<float>(), backend::Activation::kGeluTanh, x, scratch, out);
  const std::vector<double> want = ex.data["expected_out"].get<std::vector<double>>();
  for (int64_t t = 0; t < ex.tokens; ++t) {
    std::vector<float> row(want.begin() + t * ex.hidden, want.begin() + (t + 1) * ex.hidden);
    EXPECT_LE(testing::row_relative_error(out.data_as<float>() + t * ex.hidden, row.data(), ex.hidden), 1e-5)
        << "token " << t;
  }
}

}  // namespace
}  // namespace loom::model
