#include "weights/safetensors_stream_writer.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace loom::weights {

uint64_t PlannedTensor::bytes() const {
  const auto size = dtype_bytes_for(dtype, static_cast<uint64_t>(shape_elements(shape)));
  if (!size) {
    fail(ErrorKind::kInvalidRequest, "tensor '{}': {} elements of {} do not fill whole bytes", name,
         shape_string(shape), dtype_name(dtype));
  }
  return *size;
}

SafetensorsStreamWriter::SafetensorsStreamWriter(const std::filesystem::path& path, std::vector<PlannedTensor> plan,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(path), plan_(std::move(plan)) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string_view> seen;
  uint64_t offset = 0;
  for (const PlannedTensor& t : plan_) {
    if (t.name.empty() || t.name == "__metadata__" || !seen.insert(t.name).second) {
      fail(ErrorKind::kInvalidRequest, "{}: invalid or repeated tensor name '{}'", path.string(), t.name);
    }
    const uint64_t size = t.bytes();
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  file_size_ = 8 + text.size() + offset;

  out_.open(path, std::ios::binary | std::ios::trunc);
  if (!out_) fail(ErrorKind::kInvalidRequest, "{}: cannot open for writing", path.string());
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  out_.write(length, sizeof length);
  out_.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out_) fail(ErrorKind::kInvalidRequest, "{}: write failed", path.string());
}

void SafetensorsStreamWriter::write(std::string_view name, std::span<const std::byte> data) {
  if (next_ >= plan_.size() || plan_[next_].name != name) {
    fail(ErrorKind::kInternal, "{}: tensor '{}' written out of plan order", path_.string(), name);
  }
  if (plan_[next_].bytes() != data.size()) {
    fail(ErrorKind::kInternal, "{}: tensor '{}' planned as {} bytes, got {}", path_.string(), name,
         plan_[next_].bytes(), data.size());
  }
  if (!data.empty()) out_.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out_) fail(ErrorKind::kInvalidRequest, "{}: write failed", path_.string());
  ++next_;
}

void SafetensorsStreamWriter::finish() {
  if (next_ != plan_.size()) {
    fail(ErrorKind::kInternal, "{}: {} of {} planned tensors written", path_.string(), next_, plan_.size());
  }
  out_.flush();
  out_.close();
  if (!out_) fail(ErrorKind::kInvalidRequest, "{}: write failed", path_.string());
}

}  // namespace loom::weights
