#pragma once
// Writes one safetensors file tensor by tensor, so that a file of several gigabytes never has to be held in memory.
// The header is decided up front from the planned names, dtypes and shapes; the tensors' bytes are then appended in
// that order. The layout matches SafetensorsWriter: header padded with spaces to a multiple of 8 bytes,
// `__metadata__` first, tensors back to back in plan order.

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace loom::weights {

struct PlannedTensor {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t bytes() const;  // shape × dtype size; throws kInvalidRequest for a sub-byte shape that leaves a partial byte
};

class SafetensorsStreamWriter {
 public:
  // Creates `path` (truncating it) and writes the header. Names must be unique and not "__metadata__".
  SafetensorsStreamWriter(const std::filesystem::path& path, std::vector<PlannedTensor> plan,
                          const std::map<std::string, std::string>& metadata);

  // Appends the next planned tensor; `name` and the byte count must match the plan (kInternal otherwise).
  void write(std::string_view name, std::span<const std::byte> data);
  // Checks that every planned tensor was written and flushes the file. Throws kInvalidRequest on an I/O error.
  void finish();

  // The size the file will have once finished.
  uint64_t file_size() const { return file_size_; }

 private:
  std::filesystem::path path_;
  std::vector<PlannedTensor> plan_;
  size_t next_ = 0;
  uint64_t file_size_ = 0;
  std::ofstream out_;
};

}  // namespace loom::weights
