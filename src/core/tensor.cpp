#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace loom {

int64_t shape_elements(const Shape& shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(ErrorKind::kInternal, "negative dimension in shape {}", shape_string(shape));
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d) {
      fail(ErrorKind::kInternal, "shape {} overflows", shape_string(shape));
    }
    count *= d;
  }
  return count;
}

std::string shape_string(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  const size_t size = t.bytes();
  // 64-byte alignment so SIMD kernels can use aligned loads on freshly allocated activations.
  const size_t rounded = (size + 63) / 64 * 64;
  void* memory = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (memory == nullptr) fail(ErrorKind::kOverloaded, "out of host memory allocating {} bytes", size);
  std::memset(memory, 0, rounded == 0 ? 64 : rounded);
  t.storage_ = std::shared_ptr<void>(memory, std::free);
  t.data_ = memory;
  return t;
}

Tensor Tensor::borrow(DType dtype, Shape shape, void* data, Device device) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.device_ = device;
  t.data_ = data;
  return t;
}

Tensor Tensor::adopt(DType dtype, Shape shape, std::shared_ptr<void> storage, Device device) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.device_ = device;
  t.data_ = storage.get();
  t.storage_ = std::move(storage);
  return t;
}

int64_t Tensor::dim(int axis) const {
  const int r = rank();
  const int index = axis < 0 ? axis + r : axis;
  if (index < 0 || index >= r)
    fail(ErrorKind::kInternal, "axis {} out of range for shape {}", axis, shape_string(shape_));
  return shape_[static_cast<size_t>(index)];
}

size_t Tensor::bytes() const {
  const auto size = dtype_bytes_for(dtype_, static_cast<uint64_t>(elements()));
  if (!size) fail(ErrorKind::kInternal, "{} elements of {} do not fill whole bytes", elements(), dtype_name(dtype_));
  return static_cast<size_t>(*size);
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_elements(shape) != elements()) {
    fail(ErrorKind::kInternal, "cannot reshape {} to {}", shape_string(shape_), shape_string(shape));
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

}  // namespace loom
