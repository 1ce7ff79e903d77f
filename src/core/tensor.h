#pragma once
// A contiguous, row-major block of elements with a dtype, a shape and a device. No strides, no autograd, no lazy
// graph: ops take tensors and write tensors. Storage is either owned (shared, reference counted) or borrowed from
// someone who outlives the tensor (a memory-mapped weight file, a caller's buffer).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace loom {

enum class DeviceKind : uint8_t { kCpu, kCuda };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;
  bool operator==(const Device&) const = default;
};

using Shape = std::vector<int64_t>;

// Elements in a shape (1 for a scalar). Throws on negative dimensions or overflow.
int64_t shape_elements(const Shape& shape);
std::string shape_string(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Allocates zero-filled host memory.
  static Tensor zeros(DType dtype, Shape shape);
  // Wraps memory the caller keeps alive for the tensor's lifetime.
  static Tensor borrow(DType dtype, Shape shape, void* data, Device device = {});
  // Shares ownership of storage allocated elsewhere (for example a device allocation with its own deleter).
  static Tensor adopt(DType dtype, Shape shape, std::shared_ptr<void> storage, Device device = {});

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int axis) const;  // negative axes count from the end
  int rank() const { return static_cast<int>(shape_.size()); }
  Device device() const { return device_; }
  int64_t elements() const { return shape_elements(shape_); }
  size_t bytes() const;
  bool empty() const { return data_ == nullptr; }

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T>
  T* data_as() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data_as() const {
    return static_cast<const T*>(data_);
  }
  template <typename T>
  std::span<T> span() {
    return {data_as<T>(), static_cast<size_t>(elements())};
  }
  template <typename T>
  std::span<const T> span() const {
    return {data_as<T>(), static_cast<size_t>(elements())};
  }

  // Same storage, new shape with the same number of elements.
  Tensor reshaped(Shape shape) const;

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  Device device_;
  std::shared_ptr<void> storage_;  // null when borrowed
  void* data_ = nullptr;
};

}  // namespace loom
