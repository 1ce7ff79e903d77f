// Rotary embeddings from a RopeTable (rope_table.h): one kernel for every variant.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/check.h"
#include "backend/cpu/cpu_backend.h"

namespace loom::backend::cpu {

void CpuBackend::rope(Tensor& x, const RopeTable& table, std::span<const int32_t> positions) {
  expect_f32(x, "rope", "x");
  if (x.rank() != 3 || x.dim(2) != table.head_dim) {
    fail(ErrorKind::kInternal, "[rope] x has shape {}, expected [tokens, heads, {}]", shape_string(x.shape()),
         table.head_dim);
  }
  const int64_t tokens = x.dim(0);
  const int64_t heads = x.dim(1);
  const int64_t d = table.head_dim;
  if (static_cast<int64_t>(positions.size()) != tokens * table.axes) {
    fail(ErrorKind::kInternal, "[rope] {} positions for {} tokens × {} axes", positions.size(), tokens, table.axes);
  }
  const int pairs = table.pairs();
  float* data = x.data_as<float>();
  parallel(tokens, std::max<int64_t>(1, 4096 / std::max<int64_t>(heads * d, 1)), [&](int64_t begin, int64_t end) {
    std::vector<float> cos_table(static_cast<size_t>(pairs)), sin_table(static_cast<size_t>(pairs));
    for (int64_t t = begin; t < end; ++t) {
      for (int p = 0; p < pairs; ++p) {
        const size_t i = static_cast<size_t>(p);
        const auto position = static_cast<float>(positions[static_cast<size_t>(table.axis[i] * tokens + t)]);
        // The angle is formed in fp32 as the reference does (an fp32 matmul of inv_freq and positions), so large
        // positions round the same way rather than "more correctly".
        const float angle = position * table.inv_freq[i];
        cos_table[i] = std::cos(angle);
        sin_table[i] = std::sin(angle);
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* head = data + (t * heads + h) * d;
        for (int p = 0; p < pairs; ++p) {
          const size_t i = static_cast<size_t>(p);
          const float a = head[table.first[i]];
          const float b = head[table.second[i]];
          head[table.first[i]] = a * cos_table[i] - b * sin_table[i];
          head[table.second[i]] = b * cos_table[i] + a * sin_table[i];
        }
      }
    }
  });
}

}  // namespace loom::backend::cpu
