#include "weights/safetensors_image.h"

#include <cstring>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"

namespace loom::weights {
namespace {

constexpr uint64_t kAlignment = 64;

}  // namespace

SafetensorsImage::SafetensorsImage(std::vector<PlannedTensor> plan) : plan_(std::move(plan)) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::set<std::string_view> seen;
  uint64_t offset = 0;
  std::vector<uint64_t> data_offsets;
  for (const PlannedTensor& t : plan_) {
    if (t.name.empty() || t.name == "__metadata__" || !seen.insert(t.name).second) {
      fail(ErrorKind::kInvalidRequest, "in-memory safetensors image: invalid or repeated tensor name '{}'", t.name);
    }
    const uint64_t bytes = t.bytes();
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    data_offsets.push_back(offset);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((kAlignment - (8 + text.size()) % kAlignment) % kAlignment, ' ');
  const uint64_t data_start = 8 + text.size();
  size_ = data_start + offset;
  // Uninitialised on purpose: pages of a multi-gigabyte image are touched only when the caller fills them.
  image_ = std::shared_ptr<std::byte[]>(new (std::align_val_t{kAlignment}) std::byte[size_],
                                        [](std::byte* p) { ::operator delete[](p, std::align_val_t{kAlignment}); });
  for (int i = 0; i < 8; ++i) image_[i] = static_cast<std::byte>((text.size() >> (8 * i)) & 0xFF);
  std::memcpy(image_.get() + 8, text.data(), text.size());
  for (const uint64_t o : data_offsets) offsets_.push_back(data_start + o);
}

std::span<std::byte> SafetensorsImage::tensor_bytes(size_t index) {
  if (index >= plan_.size() || image_ == nullptr) {
    fail(ErrorKind::kInternal, "in-memory safetensors image: no tensor {} (plan of {})", index, plan_.size());
  }
  return {image_.get() + offsets_[index], static_cast<size_t>(plan_[index].bytes())};
}

SafetensorsFile SafetensorsImage::open(std::filesystem::path name) {
  if (image_ == nullptr) fail(ErrorKind::kInternal, "{}: the in-memory image was already opened", name.string());
  const uint64_t size = std::exchange(size_, 0);
  return SafetensorsFile::from_memory(std::move(name), std::move(image_), size);
}

}  // namespace loom::weights
