#pragma once
// A safetensors file image laid out in memory from a plan of names, dtypes and shapes: the caller fills each tensor's
// bytes in place and then opens the image as a SafetensorsFile that owns it. Nothing touches the disk and nothing is
// copied, which is how synthetic models of several gigabytes are built for benchmarks.
//
// The layout is the one the writers produce, except that the header is padded to 64 bytes (not 8) so that the data
// buffer starts on a cache line; tensors are back to back in plan order.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "weights/safetensors.h"
#include "weights/safetensors_stream_writer.h"

namespace loom::weights {

class SafetensorsImage {
 public:
  // Names must be unique and not "__metadata__" (kInvalidRequest otherwise). Tensor bytes start uninitialised.
  explicit SafetensorsImage(std::vector<PlannedTensor> plan);

  const std::vector<PlannedTensor>& plan() const { return plan_; }
  uint64_t size() const { return size_; }
  // The bytes of the plan's `index`-th tensor, to be filled by the caller.
  std::span<std::byte> tensor_bytes(size_t index);

  // Validates the image and hands it over; this object is empty afterwards. `name` stands for the file's path.
  SafetensorsFile open(std::filesystem::path name);

 private:
  std::vector<PlannedTensor> plan_;
  std::vector<uint64_t> offsets_;  // of each tensor, from the start of the image
  std::shared_ptr<std::byte[]> image_;
  uint64_t size_ = 0;
};

}  // namespace loom::weights
