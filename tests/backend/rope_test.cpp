// RoPE tables against the published layouts, and the CPU kernel against the direct formula (reference::rope) for
// every variant.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/reference/reference.h"
#include "core/error.h"
#include "test_util.h"

namespace loom::backend {
namespace {

using testing::kUnit;

TEST(RopeTable, MropeInterleavedAssignsAxesAsQwen3Vl) {
  // models.md §3.2: start from T; indices 1,4,…,58 take H; 2,5,…,59 take W; the rest stay T.
  const RopeTable table = make_rope_table(
      {.kind = RopeKind::kMropeInterleaved, .head_dim = 128, .theta = 5e6, .mrope_section = {24, 20, 20}});
  ASSERT_EQ(table.pairs(), 64);
  EXPECT_EQ(table.axes, 3);
  for (int i = 0; i < 64; ++i) {
    int want = 0;
    if (i <= 58 && i % 3 == 1) want = 1;
    if (i <= 59 && i % 3 == 2) want = 2;
    EXPECT_EQ(table.axis[static_cast<size_t>(i)], want) << "pair " << i;
    EXPECT_EQ(table.first[static_cast<size_t>(i)], i);
    EXPECT_EQ(table.second[static_cast<size_t>(i)], i + 64);
  }
}

TEST(RopeTable, ProportionalRotatesOnlyTheFirstQuarterWithFullDimExponent) {
  const RopeTable table =
      make_rope_table({.kind = RopeKind::kProportional, .head_dim = 512, .theta = 1e6, .partial_rotary_factor = 0.25});
  ASSERT_EQ(table.pairs(), 256);
  for (int i = 0; i < 256; ++i) {
    const float want = i < 64 ? static_cast<float>(std::pow(1e6, -2.0 * i / 512)) : 0.0f;
    EXPECT_EQ(table.inv_freq[static_cast<size_t>(i)], want) << "pair " << i;
    EXPECT_EQ(table.second[static_cast<size_t>(i)], i + 256);  // rotate-half over all 512
  }
}

// modeling_rope_utils' proportional init divides the whole fp32 inv_freq by `factor`; head_dim 48 with partial 0.5
// rotates int(0.5·48 // 2) = 12 of 24 pairs.
TEST(RopeTable, ProportionalDividesByFactor) {
  const RopeTable table = make_rope_table(
      {.kind = RopeKind::kProportional, .head_dim = 48, .theta = 1e4, .factor = 4, .partial_rotary_factor = 0.5});
  ASSERT_EQ(table.pairs(), 24);
  for (int i = 0; i < 24; ++i) {
    const float want = i < 12 ? static_cast<float>(std::pow(1e4, -2.0 * i / 48)) / 4.0f : 0.0f;
    EXPECT_FLOAT_EQ(table.inv_freq[static_cast<size_t>(i)], want) << "pair " << i;
  }
}

TEST(RopeTable, TwoDHalvesRotateInsideEachHalf) {
  const RopeTable table = make_rope_table({.kind = RopeKind::kTwoDHalves, .head_dim = 64, .theta = 100});
  ASSERT_EQ(table.pairs(), 32);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(table.first[static_cast<size_t>(i)], i);
    EXPECT_EQ(table.second[static_cast<size_t>(i)], i + 16);
    EXPECT_EQ(table.axis[static_cast<size_t>(i)], 0);
    EXPECT_EQ(table.first[static_cast<size_t>(16 + i)], 32 + i);
    EXPECT_EQ(table.second[static_cast<size_t>(16 + i)], 48 + i);
    EXPECT_EQ(table.axis[static_cast<size_t>(16 + i)], 1);
  }
}

TEST(RopeTable, RejectsInconsistentSpecs) {
  EXPECT_THROW(make_rope_table({.head_dim = 7}), Error);
  EXPECT_THROW(make_rope_table({.kind = RopeKind::kMropeInterleaved, .head_dim = 128, .mrope_section = {24, 20, 19}}),
               Error);
  EXPECT_THROW(make_rope_table({.kind = RopeKind::kTwoDHalves, .head_dim = 6}), Error);
}

void expect_rope_matches(const RopeSpec& spec, int axes, int32_t max_position) {
  ThreadPool pool(2);
  cpu::CpuBackend backend(pool);
  std::mt19937 rng(static_cast<unsigned>(spec.head_dim + static_cast<int>(spec.kind)));
  const int64_t tokens = 7, heads = 3, d = spec.head_dim;
  const auto x = testing::random_floats(rng, static_cast<size_t>(tokens * heads * d));
  std::uniform_int_distribution<int32_t> position(0, max_position);
  std::vector<int32_t> positions(static_cast<size_t>(axes * tokens));
  for (int32_t& p : positions) p = position(rng);
  Tensor t = testing::tensor_of(x, {tokens, heads, d});
  backend.rope(t, make_rope_table(spec), positions);
  std::vector<float> want = x;
  reference::rope(want, tokens, heads, spec, positions);
  for (size_t i = 0; i < want.size(); ++i) {
    // Both form the same fp32 angle; cos/sin in fp32 are within an ulp, and a·cos − b·sin adds three roundings:
    // 5u of the pair's magnitude (|a|, |b| ≤ 1 here).
    ASSERT_NEAR(t.data_as<float>()[i], want[i], 10 * kUnit) << "element " << i;
  }
}

TEST(Rope, DefaultMatchesFormula) {
  expect_rope_matches({.kind = RopeKind::kDefault, .head_dim = 256, .theta = 1e4}, 1, 100000);
}
TEST(Rope, LinearScalingMatchesFormula) {
  expect_rope_matches({.kind = RopeKind::kLinear, .head_dim = 256, .theta = 1e6, .factor = 8}, 1, 100000);
}
TEST(Rope, ProportionalMatchesFormula) {
  expect_rope_matches({.kind = RopeKind::kProportional, .head_dim = 512, .theta = 1e6, .partial_rotary_factor = 0.25},
                      1, 30000);
}
TEST(Rope, ProportionalWithFactorMatchesFormula) {
  expect_rope_matches(
      {.kind = RopeKind::kProportional, .head_dim = 48, .theta = 1e4, .factor = 4, .partial_rotary_factor = 0.5}, 1,
      3000);
}
TEST(Rope, TwoDHalvesMatchesFormula) {
  expect_rope_matches({.kind = RopeKind::kTwoDHalves, .head_dim = 64, .theta = 100}, 2, 100);
}
TEST(Rope, TwoDConcatMatchesFormula) {
  expect_rope_matches({.kind = RopeKind::kTwoDConcat, .head_dim = 64, .theta = 1e4}, 2, 100);
}
TEST(Rope, MropeInterleavedMatchesFormula) {
  expect_rope_matches(
      {.kind = RopeKind::kMropeInterleaved, .head_dim = 128, .theta = 5e6, .mrope_section = {24, 20, 20}}, 3, 5000);
}

// Position zero is the identity, whatever the variant.
TEST(Rope, PositionZeroIsIdentity) {
  cpu::CpuBackend backend;
  std::mt19937 rng(1);
  const auto x = testing::random_floats(rng, 2 * 4 * 128);
  Tensor t = testing::tensor_of(x, {2, 4, 128});
  const std::vector<int32_t> zeros(6, 0);
  backend.rope(
      t, make_rope_table({.kind = RopeKind::kMropeInterleaved, .head_dim = 128, .mrope_section = {24, 20, 20}}), zeros);
  EXPECT_EQ(testing::values_of(t), x);
}

}  // namespace
}  // namespace loom::backend
