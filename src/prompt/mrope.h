#pragma once
// Qwen3-VL's three-axis (temporal, height, width) positions for a prompt, as transformers' get_rope_index computes
// them: a text run continues all three axes from the current position; an image run of t×(h/merge)×(w/merge) tokens
// takes (current + frame, current + row, current + column) on the merged grid, and the position after it is
// current + max(h, w) / merge, one past the largest position the image used. rope_delta = max position + 1 − length,
// the offset decoding adds to the plain position on every axis.

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace loom::prompt {

struct MropePositions {
  std::vector<int64_t> positions;  // [3, n], axis-major: temporal row, then height, then width
  int64_t rope_delta = 0;
};

// `token_types`: 0 text, 1 image, one per token; `grids`: image_grid_thw of each image run, in order. Throws
// Error(kInternal) when the image runs do not match the grids.
MropePositions mrope_positions(std::span<const uint8_t> token_types, std::span<const std::array<int64_t, 3>> grids,
                               int merge_size);

}  // namespace loom::prompt
