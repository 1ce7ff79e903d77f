#pragma once
// Rotary position embeddings as data. Every variant the models use is a list of rotation pairs: elements (first,
// second) of a head are rotated by the angle position[axis] · inv_freq. Rotate-half RoPE pairs j with j + d/2; the 2D
// and M-RoPE variants differ only in which position axis and which frequency each pair takes. A backend applies any
// table with one kernel, so a new variant is a new table, not a new kernel.

#include <array>
#include <cstdint>
#include <vector>

namespace loom::backend {

enum class RopeKind : uint8_t {
  kDefault,       // inv_freq_i = θ^(-2i/d), i < d/2, rotate-half over d
  kLinear,        // default divided by `factor` (Gemma 3 global layers: ×8)
  kProportional,  // Gemma 4 full layers: the first partial·d/2 pairs rotate with θ^(-2i/d) (exponent over the FULL
                  // head_dim); the remaining pairs get frequency 0 (identity); rotate-half over d
  kTwoDHalves,    // Gemma 4 vision: head split in two halves of c = d/2; half 0 rotates by x, half 1 by y; inside each
                  // half rotate-half with θ^(-2i/c)
  kTwoDConcat,    // Qwen3-VL vision: f_i = θ^(-2i/(d/2)), i < d/4; pair j < d/4 takes row·f_j, pair d/4 + j takes
                  // col·f_j; rotate-half over d
  // For the 2D kinds, positions are [x, y] for kTwoDHalves and [row, col] for kTwoDConcat (axis 0 first).
  kMropeInterleaved,  // Qwen3-VL text: default frequencies; pair i takes axis h when i%3==1 and i < 3·section[1],
                      // axis w when i%3==2 and i < 3·section[2], axis t otherwise
};

struct RopeSpec {
  RopeKind kind = RopeKind::kDefault;
  int head_dim = 0;
  double theta = 10000.0;
  double factor = 1.0;                        // kLinear, kProportional: frequencies divided by it
  double partial_rotary_factor = 1.0;         // kProportional
  std::array<int, 3> mrope_section{0, 0, 0};  // kMropeInterleaved: [t, h, w] frequency counts, sum = head_dim/2
};

struct RopeTable {
  int head_dim = 0;
  int axes = 1;                 // position axes the table reads (1, 2 or 3)
  std::vector<int32_t> first;   // per pair: index of the element that takes x·cos − y·sin
  std::vector<int32_t> second;  // per pair: index of the element that takes y·cos + x·sin
  std::vector<float> inv_freq;  // per pair, fp32 like the reference's inv_freq buffer
  std::vector<uint8_t> axis;    // per pair: which position axis drives it

  int pairs() const { return static_cast<int>(first.size()); }
};

// Builds the table; throws loom::Error(kUnsupported) naming the field when the spec is inconsistent (odd head_dim,
// sections that do not add up, …).
RopeTable make_rope_table(const RopeSpec& spec);

}  // namespace loom::backend
