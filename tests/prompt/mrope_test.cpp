// Qwen3-VL M-RoPE positions against values worked out by hand from transformers' get_rope_index.

#include "prompt/mrope.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace loom::prompt {
namespace {

TEST(Mrope, TextOnlyIsArangeOnEveryAxis) {
  const std::vector<uint8_t> types(4, 0);
  const auto result = mrope_positions(types, {}, 2);
  EXPECT_EQ(result.positions, (std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}));
  EXPECT_EQ(result.rope_delta, 0);
}

TEST(Mrope, ImageOnTheMergedGridThenTextResumes) {
  // 2 text tokens, an image of grid (1, 4, 6) → 2×3 merged tokens, then 2 text tokens.
  const std::vector<uint8_t> types = {0, 0, 1, 1, 1, 1, 1, 1, 0, 0};
  const std::vector<std::array<int64_t, 3>> grids = {{1, 4, 6}};
  const auto r = mrope_positions(types, grids, 2);
  // Image starts at 2: t = 2; h = 2 + row; w = 2 + col. Next text at 2 + max(4, 6)/2 = 5.
  const std::vector<int64_t> t = {0, 1, 2, 2, 2, 2, 2, 2, 5, 6};
  const std::vector<int64_t> h = {0, 1, 2, 2, 2, 3, 3, 3, 5, 6};
  const std::vector<int64_t> w = {0, 1, 2, 3, 4, 2, 3, 4, 5, 6};
  std::vector<int64_t> expected = t;
  expected.insert(expected.end(), h.begin(), h.end());
  expected.insert(expected.end(), w.begin(), w.end());
  EXPECT_EQ(r.positions, expected);
  EXPECT_EQ(r.rope_delta, 6 + 1 - 10);
}

TEST(Mrope, TwoImagesAndATrailingImage) {
  const std::vector<uint8_t> types = {0, 1, 1, 1, 1, 0, 1, 1};
  const std::vector<std::array<int64_t, 3>> grids = {{1, 4, 4}, {1, 2, 4}};
  const auto r = mrope_positions(types, grids, 2);
  // First image at 1 (2×2), next text at 1 + 2 = 3, second image at 4 (1×2); largest = 4 + 1 = 5.
  const std::vector<int64_t> expected = {0, 1, 1, 1, 1, 3, 4, 4,   // t
                                         0, 1, 1, 2, 2, 3, 4, 4,   // h
                                         0, 1, 2, 1, 2, 3, 4, 5};  // w
  EXPECT_EQ(r.positions, expected);
  EXPECT_EQ(r.rope_delta, 5 + 1 - 8);
}

TEST(Mrope, RunsMustMatchGrids) {
  const std::vector<uint8_t> types = {0, 1, 1};
  const std::vector<std::array<int64_t, 3>> grids = {{1, 4, 4}};
  EXPECT_THROW(mrope_positions(types, grids, 2), Error);
  EXPECT_THROW(mrope_positions(types, {}, 2), Error);
}

}  // namespace
}  // namespace loom::prompt
