#pragma once
// One prompt of a golden fixture in a family-neutral form: token ids, per-axis positions, and each image's pixels in
// the layout its family's encode_image takes (Gemma 3 [1, 3, S, S]; Gemma 4 patches with (x, y) positions; Qwen3-VL
// patch rows with their grid). Lets a test run the same prompt through any model of the fixture's family, for
// example the tensor-parallel shards of it, without the reference outputs.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gemma4_test_util.h"
#include "model/model.h"
#include "model_test_util.h"

namespace loom::model::testing {

struct GoldenImage {
  int64_t start = 0, end = 0;  // prompt tokens of its soft tokens
  ImagePixels pixels;
};

struct GoldenPrompt {
  std::string case_name;
  std::vector<int32_t> ids;
  std::vector<std::vector<int32_t>> positions;  // [axes][tokens]
  int32_t rope_delta = 0;                       // decode position = index + delta (M-RoPE)
  std::vector<GoldenImage> images;
};

// Runs of `flag` == 1 as [start, end) spans.
inline std::vector<std::pair<int64_t, int64_t>> flagged_runs(const std::vector<int>& flags) {
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (size_t i = 0; i < flags.size(); ++i) {
    if (flags[i] != 1 || (i > 0 && flags[i - 1] == 1)) continue;
    size_t end = i;
    while (end < flags.size() && flags[end] == 1) ++end;
    runs.emplace_back(static_cast<int64_t>(i), static_cast<int64_t>(end));
  }
  return runs;
}

// Image k of a Gemma 3 case's pixel file (images [3, size, size] back to back) as the tower takes it: [1, 3, S, S].
inline ImagePixels gemma3_image(const std::vector<float>& pixels, int64_t k, int64_t size, int64_t soft_tokens) {
  const int64_t elems = 3 * size * size;
  EXPECT_LE((k + 1) * elems, static_cast<int64_t>(pixels.size()));
  ImagePixels image;
  image.pixel_values = Tensor::zeros(DType::kF32, {1, 3, size, size});
  std::copy_n(pixels.data() + k * elems, elems, image.pixel_values.data_as<float>());
  image.soft_tokens = soft_tokens;
  return image;
}

// A Qwen3-VL image: patch rows [row, row + t·h·w) of a case's pixel rows of `width` floats, with its grid; every
// merge × merge patches make one soft token.
inline ImagePixels qwen3vl_image(const std::vector<float>& pixels, int64_t row, int64_t width,
                                 const std::vector<int64_t>& grid, int64_t merge) {
  const int64_t rows = grid[0] * grid[1] * grid[2];
  ImagePixels image;
  image.pixel_values = Tensor::zeros(DType::kF32, {rows, width});
  std::copy_n(pixels.data() + row * width, rows * width, image.pixel_values.data_as<float>());
  std::copy(grid.begin(), grid.end(), image.grid_thw);
  image.soft_tokens = rows / (merge * merge);
  return image;
}

// The case of `fixture` with the most images (the first of those), with `axes` position axes.
inline GoldenPrompt read_golden_prompt(const std::string& fixture, int axes) {
  const std::filesystem::path expected = golden_dir() / (fixture + "_expected");
  const nlohmann::json cases = nlohmann::json::parse(std::ifstream(expected / "cases.json"));
  const nlohmann::json* chosen = &cases["cases"][0];
  size_t most = 0;
  for (const nlohmann::json& c : cases["cases"]) {
    const size_t images = c.contains("images") ? c["images"].size() : c.value("num_images", size_t{0});
    if (images > most) {
      most = images;
      chosen = &c;
    }
  }
  const nlohmann::json& c = *chosen;
  GoldenPrompt p;
  p.case_name = c["name"].get<std::string>();
  p.ids = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto n = static_cast<int32_t>(p.ids.size());
  if (axes == 3) {
    p.positions = c["positions"].get<std::vector<std::vector<int32_t>>>();
    p.rope_delta = c["rope_delta"].get<int32_t>();
  } else {
    p.positions.emplace_back();
    for (int32_t i = 0; i < n; ++i) p.positions[0].push_back(i);
  }

  if (c.contains("image_token_mask")) {  // Gemma 4: patches and positions per image
    const auto runs = flagged_runs(c["image_token_mask"].get<std::vector<int>>());
    for (size_t k = 0; k < runs.size(); ++k) {
      p.images.push_back({runs[k].first, runs[k].second,
                          read_gemma4_image(expected, c["images"][k], cases["patch_dim"].get<int64_t>())});
    }
  } else if (c.contains("grids")) {  // Qwen3-VL: patch rows per grid; image tokens are merge² patches each
    if (c["num_images"].get<int>() == 0) return p;
    const std::vector<float> pixels = read_f32_file(expected / c["pixels_file"].get<std::string>());
    const auto grids = c["grids"].get<std::vector<std::vector<int64_t>>>();
    int64_t total = 0;
    for (const auto& g : grids) total += g[0] * g[1] * g[2];
    const int64_t width = static_cast<int64_t>(pixels.size()) / total;
    const int64_t merge = cases["merge_size"].get<int64_t>();
    const auto runs = flagged_runs(c["token_type_ids"].get<std::vector<int>>());
    EXPECT_EQ(runs.size(), grids.size());
    int64_t row = 0;
    for (size_t k = 0; k < grids.size() && k < runs.size(); ++k) {
      GoldenImage image{runs[k].first, runs[k].second, qwen3vl_image(pixels, row, width, grids[k], merge)};
      EXPECT_EQ(image.pixels.soft_tokens, image.end - image.start);
      row += grids[k][0] * grids[k][1] * grids[k][2];
      p.images.push_back(std::move(image));
    }
  } else {  // Gemma 3: one [3, S, S] image per run of token_type 1
    if (c["num_images"].get<int>() == 0) return p;
    const int64_t size = cases["image_size"].get<int64_t>();
    const std::vector<float> pixels = read_f32_file(expected / c["pixels_file"].get<std::string>());
    const auto runs = flagged_runs(c["token_type_ids"].get<std::vector<int>>());
    for (size_t k = 0; k < runs.size(); ++k) {
      p.images.push_back({runs[k].first, runs[k].second,
                          gemma3_image(pixels, static_cast<int64_t>(k), size, runs[k].second - runs[k].first)});
    }
  }
  return p;
}

}  // namespace loom::model::testing
