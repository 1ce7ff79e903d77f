#include "prompt/mrope.h"

#include <algorithm>

#include "core/error.h"

namespace loom::prompt {

MropePositions mrope_positions(std::span<const uint8_t> token_types, std::span<const std::array<int64_t, 3>> grids,
                               int merge_size) {
  const size_t n = token_types.size();
  MropePositions out;
  out.positions.resize(3 * n);
  int64_t* t_axis = out.positions.data();
  int64_t* h_axis = t_axis + n;
  int64_t* w_axis = h_axis + n;
  int64_t current = 0;
  int64_t largest = -1;
  size_t next_grid = 0;
  size_t i = 0;
  while (i < n) {
    size_t end = i;
    while (end < n && token_types[end] == token_types[i]) ++end;
    if (token_types[i] == 0) {
      for (size_t k = i; k < end; ++k) {
        const int64_t p = current + static_cast<int64_t>(k - i);
        t_axis[k] = h_axis[k] = w_axis[k] = p;
      }
      current += static_cast<int64_t>(end - i);
      largest = current - 1;
    } else {
      if (next_grid >= grids.size()) fail(ErrorKind::kInternal, "M-RoPE: more image runs than image grids");
      const auto& grid = grids[next_grid++];
      const int64_t rows = grid[1] / merge_size;
      const int64_t cols = grid[2] / merge_size;
      if (grid[0] * rows * cols != static_cast<int64_t>(end - i)) {
        fail(ErrorKind::kInternal, "M-RoPE: an image run of {} tokens for a grid of {}x{}x{}", end - i, grid[0], rows,
             cols);
      }
      size_t k = i;
      for (int64_t f = 0; f < grid[0]; ++f) {
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c, ++k) {
            t_axis[k] = current + f;
            h_axis[k] = current + r;
            w_axis[k] = current + c;
          }
        }
      }
      largest = std::max({largest, current + grid[0] - 1, current + rows - 1, current + cols - 1});
      current += std::max(grid[1], grid[2]) / merge_size;
    }
    i = end;
  }
  if (next_grid != grids.size())
    fail(ErrorKind::kInternal, "M-RoPE: {} image grids for {} image runs", grids.size(), next_grid);
  out.rope_delta = n == 0 ? 0 : largest + 1 - static_cast<int64_t>(n);
  return out;
}

}  // namespace loom::prompt
