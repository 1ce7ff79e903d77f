#pragma once
// Reading and writing safetensors files (weight-formats.md §1).
//
// SafetensorsFile memory-maps a file read-only and validates its whole header before anything can be read: every
// entry's dtype, shape and byte range, and that the ranges tile the data buffer exactly. Tensor bytes are handed out
// as spans into the mapping; they are NOT aligned (MLX's writer does not align), so typed access always goes through a
// copy (to_tensor, read_f32), never through a cast pointer.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace loom::weights {

// Largest header we accept, as in the reference implementation.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  // [begin, end) relative to the start of the data buffer.
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t bytes() const { return end - begin; }
};

// A validated header: tensors in file order (sorted by begin offset) and the string metadata.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + N: where the data buffer starts in the file
  uint64_t data_bytes = 0;   // size of the data buffer
};

// Validates a complete file image (8-byte length, JSON header, data buffer). `source` names the file in error messages.
// Throws loom::Error(kInvalidFile) naming the file, the tensor and the expectation. Touches only the header bytes;
// the data buffer is checked for size only. This is also the fuzzing entry point.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file, std::string_view source);

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws kNotFound if it cannot be opened, kInvalidFile if it is malformed.
  static SafetensorsFile open(const std::filesystem::path& path);
  // Validates a complete file image held in memory (safetensors_image.h builds one); the file shares ownership of
  // `image` and `name` stands for its path in messages. to_tensor() hands out views that share the image instead of
  // copies (for 64-byte aligned tensors), so a model built from it holds its weights once.
  static SafetensorsFile from_memory(std::filesystem::path name, std::shared_ptr<std::byte[]> image, uint64_t size);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  uint64_t file_size() const { return size_; }

  bool contains(std::string_view name) const;
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  const TensorInfo& info(std::string_view name) const;  // throws kNotFound naming the file

  // The raw little-endian bytes of a tensor, pointing into the mapping (valid while this object lives).
  std::span<const std::byte> bytes(std::string_view name) const;
  // An owning copy with the stored dtype and shape (for an in-memory image: a view sharing the image, see above).
  Tensor to_tensor(std::string_view name) const;
  // An owning F32 copy; the tensor must be F32, F16 or BF16 (kUnsupported otherwise).
  Tensor read_f32(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  void unmap();

  std::filesystem::path path_;
  const std::byte* mapping_ = nullptr;
  std::shared_ptr<std::byte[]> image_;  // set for an in-memory image (mapping_ points into it), else null
  uint64_t size_ = 0;
  SafetensorsHeader header_;
  std::unordered_map<std::string, size_t> index_;  // name → position in header_.tensors
};

// Builds a safetensors file in memory and writes it. The header is padded with spaces to a multiple of 8 bytes so
// the data buffer starts aligned; tensors are stored in the order they were added.
class SafetensorsWriter {
 public:
  // Copies `data`, which must hold exactly shape × dtype bytes. Names must be unique and not "__metadata__".
  void add(std::string name, DType dtype, Shape shape, std::span<const std::byte> data);
  void add(std::string name, const Tensor& tensor);
  void set_metadata(std::string key, std::string value);

  // The complete file image.
  std::vector<std::byte> serialize() const;
  // Writes to a temporary file next to `path` and renames it into place.
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    std::vector<std::byte> data;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace loom::weights
