#include <cmath>
#include <cstring>

#include "backend/reference/reference.h"
#include "core/error.h"

namespace loom::backend::reference {

float float_element(const weights::Weight& w, int64_t index) {
  const auto* bytes = static_cast<const uint8_t*>(w.values.data());
  switch (w.values.dtype()) {
    case DType::kF32: {
      float value;
      std::memcpy(&value, bytes + index * 4, 4);
      return value;
    }
    case DType::kBF16: {
      // bfloat16 is the top half of a float32.
      uint16_t half;
      std::memcpy(&half, bytes + index * 2, 2);
      const uint32_t bits = static_cast<uint32_t>(half) << 16;
      float value;
      std::memcpy(&value, &bits, 4);
      return value;
    }
    case DType::kF16: {
      uint16_t h;
      std::memcpy(&h, bytes + index * 2, 2);
      const int sign = h >> 15;
      const int exponent = (h >> 10) & 0x1f;
      const int mantissa = h & 0x3ff;
      double magnitude;
      if (exponent == 0) {
        magnitude = std::ldexp(mantissa, -24);  // subnormal: m · 2^-14 / 1024
      } else if (exponent == 31) {
        magnitude = mantissa == 0 ? INFINITY : NAN;
      } else {
        magnitude = std::ldexp(1024 + mantissa, exponent - 25);
      }
      return static_cast<float>(sign ? -magnitude : magnitude);
    }
    default:
      fail(ErrorKind::kUnsupported, "[reference] weight dtype {} is not a float format", dtype_name(w.values.dtype()));
  }
}

std::vector<float> embedding(const weights::Weight& w, std::span<const int32_t> ids, float scale) {
  std::vector<float> out;
  out.reserve(ids.size() * static_cast<size_t>(w.cols));
  for (int32_t id : ids) {
    for (int64_t c = 0; c < w.cols; ++c) out.push_back(float_element(w, id * w.cols + c) * scale);
  }
  return out;
}

std::vector<float> embedding_shard(const weights::Weight& w, std::span<const int32_t> ids, int64_t first_id,
                                   float scale) {
  std::vector<float> out;
  out.reserve(ids.size() * static_cast<size_t>(w.cols));
  for (int32_t id : ids) {
    const int64_t row = id - first_id;
    const bool mine = row >= 0 && row < w.rows;
    for (int64_t c = 0; c < w.cols; ++c) out.push_back(mine ? float_element(w, row * w.cols + c) * scale : 0.0f);
  }
  return out;
}

std::vector<float> matmul(std::span<const float> x, int64_t n, const weights::Weight& w) {
  std::vector<float> out(static_cast<size_t>(n * w.rows));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double sum = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        sum += static_cast<double>(x[static_cast<size_t>(i * w.cols + c)]) * float_element(w, r * w.cols + c);
      }
      out[static_cast<size_t>(i * w.rows + r)] = static_cast<float>(sum);
    }
  }
  return out;
}

}  // namespace loom::backend::reference
