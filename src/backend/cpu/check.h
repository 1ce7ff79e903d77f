#pragma once
// Argument checks shared by the CPU ops: one line per check at the call site, messages that start with the op name.

#include <string_view>

#include "core/error.h"
#include "core/tensor.h"

namespace loom::backend::cpu {

inline void expect_f32(const Tensor& t, std::string_view op, std::string_view what) {
  if (t.empty()) fail(ErrorKind::kInternal, "[{}] {} is empty", op, what);
  if (t.dtype() != DType::kF32)
    fail(ErrorKind::kInternal, "[{}] {} must be F32, got {}", op, what, dtype_name(t.dtype()));
  if (t.device().kind != DeviceKind::kCpu) fail(ErrorKind::kInternal, "[{}] {} is not in host memory", op, what);
}

inline void expect_same_shape(const Tensor& a, const Tensor& b, std::string_view op, std::string_view what) {
  if (a.shape() != b.shape()) {
    fail(ErrorKind::kInternal, "[{}] {} has shape {}, expected {}", op, what, shape_string(b.shape()),
         shape_string(a.shape()));
  }
}

inline void expect_shape(const Tensor& t, const Shape& shape, std::string_view op, std::string_view what) {
  if (t.shape() != shape) {
    fail(ErrorKind::kInternal, "[{}] {} has shape {}, expected {}", op, what, shape_string(t.shape()),
         shape_string(shape));
  }
}

// Size of the last dimension (1 for a scalar).
inline int64_t last_dim(const Tensor& t) {
  return t.rank() == 0 ? 1 : t.dim(-1);
}

}  // namespace loom::backend::cpu
