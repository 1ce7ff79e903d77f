// Our M-RoPE prompt positions against transformers' get_rope_index on the Qwen3-VL golden cases
// (tests/golden/models/tiny_qwen3vl{,_moe}_expected/cases.json, made by tools/reference/make_tiny_qwen3vl.py; the test
// skips, naming the folder, when they are absent): positions [3, n] and rope_delta must be identical.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "prompt/mrope.h"

namespace loom::prompt {
namespace {

void expect_positions(const std::string& folder) {
  const std::filesystem::path file =
      std::filesystem::path(LOOM_SOURCE_DIR) / "tests/golden/models" / folder / "cases.json";
  if (!std::filesystem::exists(file)) {
    GTEST_SKIP() << "fixture tests/golden/models/" << folder
                 << " is absent (tools/reference/make_tiny_qwen3vl.py makes it)";
  }
  const nlohmann::json cases = nlohmann::json::parse(std::ifstream(file));
  const int merge = cases["merge_size"].get<int>();
  for (const nlohmann::json& c : cases["cases"]) {
    const auto types = c["token_type_ids"].get<std::vector<uint8_t>>();
    std::vector<std::array<int64_t, 3>> grids;
    for (const auto& g : c["grids"].get<std::vector<std::vector<int64_t>>>()) grids.push_back({g[0], g[1], g[2]});
    const MropePositions ours = mrope_positions(types, grids, merge);
    std::vector<int64_t> want;
    for (const auto& axis : c["positions"].get<std::vector<std::vector<int64_t>>>()) {
      want.insert(want.end(), axis.begin(), axis.end());
    }
    EXPECT_EQ(ours.positions, want) << c["name"];
    EXPECT_EQ(ours.rope_delta, c["rope_delta"].get<int64_t>()) << c["name"];
  }
}

TEST(Qwen3VLPositionsGolden, DenseCases) {
  expect_positions("tiny_qwen3vl_expected");
}
TEST(Qwen3VLPositionsGolden, MoeCases) {
  expect_positions("tiny_qwen3vl_moe_expected");
}

}  // namespace
}  // namespace loom::prompt
