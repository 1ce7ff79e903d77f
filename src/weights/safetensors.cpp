#include "weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/error.h"

namespace loom::weights {
namespace {

using nlohmann::json;

// A legitimate header nests three deep (object → entry → shape array). Rejecting deeper input before handing it to
// the JSON parser keeps hostile files from exhausting the stack in recursive code.
constexpr int kMaxJsonDepth = 8;

uint64_t read_u64_le(std::span<const std::byte> bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  return value;
}

void check_depth(std::string_view text, std::string_view source) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) {
        fail(ErrorKind::kInvalidFile, "{}: safetensors header nests deeper than {} levels", source, kMaxJsonDepth);
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

uint64_t read_offset(const json& value, std::string_view source, std::string_view name, std::string_view what) {
  if (!value.is_number_unsigned()) {
    fail(ErrorKind::kInvalidFile, "{}: tensor '{}': {} must be a non-negative integer, got {}", source, name, what,
         value.dump());
  }
  return value.get<uint64_t>();
}

TensorInfo parse_entry(const std::string& name, const json& entry, std::string_view source) {
  if (!entry.is_object()) {
    fail(ErrorKind::kInvalidFile, "{}: tensor '{}': expected an object with dtype, shape and data_offsets", source,
         name);
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) fail(ErrorKind::kInvalidFile, "{}: tensor '{}': missing \"{}\"", source, name, key);
  }
  TensorInfo info;
  info.name = name;

  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) fail(ErrorKind::kInvalidFile, "{}: tensor '{}': dtype must be a string", source, name);
  const auto parsed = dtype_from_name(dtype.get_ref<const std::string&>());
  if (!parsed) {
    fail(ErrorKind::kInvalidFile, "{}: tensor '{}': unknown dtype \"{}\"", source, name,
         dtype.get_ref<const std::string&>());
  }
  info.dtype = *parsed;

  const json& shape = entry["shape"];
  if (!shape.is_array()) fail(ErrorKind::kInvalidFile, "{}: tensor '{}': shape must be an array", source, name);
  uint64_t elements = 1;
  bool overflow = false;
  for (const json& dim : shape) {
    const uint64_t d = read_offset(dim, source, name, "each shape dimension");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
    if (d != 0 && elements > std::numeric_limits<uint64_t>::max() / d) overflow = true;
    if (!overflow) elements *= d;
    info.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(d, std::numeric_limits<int64_t>::max())));
  }
  if (overflow) {
    fail(ErrorKind::kInvalidFile, "{}: tensor '{}': shape {} has too many elements", source, name, shape.dump());
  }

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    fail(ErrorKind::kInvalidFile, "{}: tensor '{}': data_offsets must be [begin, end]", source, name);
  }
  info.begin = read_offset(offsets[0], source, name, "data_offsets[0]");
  info.end = read_offset(offsets[1], source, name, "data_offsets[1]");
  if (info.begin > info.end) {
    fail(ErrorKind::kInvalidFile, "{}: tensor '{}': data_offsets begin {} is after end {}", source, name, info.begin,
         info.end);
  }
  const auto expected = dtype_bytes_for(info.dtype, elements);
  if (!expected) {
    fail(ErrorKind::kInvalidFile, "{}: tensor '{}': shape {} of {} does not fill whole bytes or overflows", source,
         name, shape.dump(), dtype_name(info.dtype));
  }
  if (*expected != info.bytes()) {
    fail(ErrorKind::kInvalidFile, "{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets span {}", source,
         name, shape.dump(), dtype_name(info.dtype), *expected, info.bytes());
  }
  return info;
}

// The data buffer must be tiled exactly: sorted by offset, each tensor starts where the previous one ended.
void check_coverage(std::vector<TensorInfo>& tensors, uint64_t data_bytes, std::string_view source) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.end > data_bytes) {
      fail(ErrorKind::kInvalidFile, "{}: tensor '{}': data_offsets [{}, {}) extend past the data buffer of {} bytes",
           source, t.name, t.begin, t.end, data_bytes);
    }
    if (t.begin < cursor) {
      fail(ErrorKind::kInvalidFile, "{}: tensor '{}': data_offsets [{}, {}) overlap tensor '{}' ending at {}", source,
           t.name, t.begin, t.end, previous->name, cursor);
    }
    if (t.begin > cursor) {
      fail(ErrorKind::kInvalidFile, "{}: tensor '{}': hole in the data buffer: bytes [{}, {}) belong to no tensor",
           source, t.name, cursor, t.begin);
    }
    cursor = t.end;
    previous = &t;
  }
  if (cursor != data_bytes) {
    fail(ErrorKind::kInvalidFile, "{}: the data buffer has {} bytes but tensors cover only {} (trailing bytes)", source,
         data_bytes, cursor);
  }
}

float bf16_to_f32(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &word, sizeof out);
  return out;
}

float f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1Fu;
  uint32_t mantissa = bits & 0x3FFu;
  uint32_t word;
  if (exponent == 0x1F) {
    word = sign | 0x7F800000u | (mantissa << 13);  // inf / nan
  } else if (exponent != 0) {
    word = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 → 127
  } else if (mantissa == 0) {
    word = sign;
  } else {
    // Subnormal half: normalise the mantissa into an f32 normal number.
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    word = sign | (exponent << 23) | ((mantissa & 0x3FFu) << 13);
  }
  float out;
  std::memcpy(&out, &word, sizeof out);
  return out;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file, std::string_view source) {
  if (file.size() < 8) {
    fail(ErrorKind::kInvalidFile, "{}: file has {} bytes, a safetensors file needs at least 8", source, file.size());
  }
  const uint64_t header_bytes = read_u64_le(file.first(8));
  if (header_bytes > kMaxSafetensorsHeaderBytes) {
    fail(ErrorKind::kInvalidFile, "{}: header length {} exceeds the limit of {} bytes", source, header_bytes,
         kMaxSafetensorsHeaderBytes);
  }
  if (header_bytes > file.size() - 8) {
    fail(ErrorKind::kInvalidFile, "{}: header length {} exceeds the {} bytes after the length field", source,
         header_bytes, file.size() - 8);
  }
  const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), header_bytes);
  if (text.empty() || text.front() != '{') {
    fail(ErrorKind::kInvalidFile, "{}: header must be a JSON object starting with '{{'", source);
  }
  check_depth(text, source);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail(ErrorKind::kInvalidFile, "{}: header is not valid UTF-8 JSON: {}", source, e.what());
  }
  if (!root.is_object()) fail(ErrorKind::kInvalidFile, "{}: header must be a JSON object", source);

  SafetensorsHeader header;
  header.data_offset = 8 + header_bytes;
  header.data_bytes = file.size() - header.data_offset;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(ErrorKind::kInvalidFile, "{}: __metadata__ must be an object", source);
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          fail(ErrorKind::kInvalidFile, "{}: __metadata__ \"{}\" must map to a string, got {}", source, key,
               value.dump());
        }
        header.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    header.tensors.push_back(parse_entry(name, entry, source));
  }
  check_coverage(header.tensors, header.data_bytes, source);
  return header;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile file;
  file.path_ = path;
  const std::string source = path.string();
  const int fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorKind::kNotFound, "{}: cannot open: {}", source, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorKind::kInvalidFile, "{}: not a regular file", source);
  }
  file.size_ = static_cast<uint64_t>(st.st_size);
  if (file.size_ < 8) {
    ::close(fd);
    fail(ErrorKind::kInvalidFile, "{}: file has {} bytes, a safetensors file needs at least 8", source, file.size_);
  }
  void* mapping = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file referenced
  if (mapping == MAP_FAILED) fail(ErrorKind::kInvalidFile, "{}: mmap failed: {}", source, std::strerror(errno));
  file.mapping_ = static_cast<const std::byte*>(mapping);
  // From here on the destructor of `file` unmaps on error.
  file.header_ = parse_safetensors_header({file.mapping_, file.size_}, source);
  for (size_t i = 0; i < file.header_.tensors.size(); ++i) file.index_.emplace(file.header_.tensors[i].name, i);
  return file;
}

SafetensorsFile SafetensorsFile::from_memory(std::filesystem::path name, std::shared_ptr<std::byte[]> image,
                                             uint64_t size) {
  if (image == nullptr && size != 0) fail(ErrorKind::kInternal, "{}: a null image of {} bytes", name.string(), size);
  SafetensorsFile file;
  file.path_ = std::move(name);
  file.image_ = std::move(image);
  file.mapping_ = file.image_.get();
  file.size_ = size;
  file.header_ = parse_safetensors_header({file.mapping_, file.size_}, file.path_.string());
  for (size_t i = 0; i < file.header_.tensors.size(); ++i) file.index_.emplace(file.header_.tensors[i].name, i);
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      image_(std::move(other.image_)),
      size_(std::exchange(other.size_, 0)),
      header_(std::move(other.header_)),
      index_(std::move(other.index_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    mapping_ = std::exchange(other.mapping_, nullptr);
    image_ = std::move(other.image_);
    size_ = std::exchange(other.size_, 0);
    header_ = std::move(other.header_);
    index_ = std::move(other.index_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  unmap();
}

void SafetensorsFile::unmap() {
  if (image_ != nullptr) {
    image_.reset();
  } else if (mapping_ != nullptr) {
    ::munmap(const_cast<std::byte*>(mapping_), size_);
  }
  mapping_ = nullptr;
}

bool SafetensorsFile::contains(std::string_view name) const {
  return find(name) != nullptr;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const TensorInfo* found = find(name);
  if (found == nullptr) fail(ErrorKind::kNotFound, "{}: no tensor '{}'", path_.string(), name);
  return *found;
}

std::span<const std::byte> SafetensorsFile::bytes(std::string_view name) const {
  const TensorInfo& t = info(name);
  return {mapping_ + header_.data_offset + t.begin, static_cast<size_t>(t.bytes())};
}

Tensor SafetensorsFile::to_tensor(std::string_view name) const {
  const TensorInfo& t = info(name);
  // An in-memory image lives as long as anything shares it: hand out a view instead of a second copy. Only aligned
  // tensors, so that the view is as good as a fresh allocation for every kernel.
  const auto source_bytes = bytes(name);
  if (image_ != nullptr && !source_bytes.empty() && reinterpret_cast<uintptr_t>(source_bytes.data()) % 64 == 0) {
    std::shared_ptr<void> view(image_, const_cast<std::byte*>(source_bytes.data()));
    return Tensor::adopt(t.dtype, t.shape, std::move(view));
  }
  Tensor out = Tensor::zeros(t.dtype, t.shape);
  const auto source = bytes(name);
  if (!source.empty()) std::memcpy(out.data(), source.data(), source.size());
  return out;
}

Tensor SafetensorsFile::read_f32(std::string_view name) const {
  const TensorInfo& t = info(name);
  const auto source = bytes(name);
  Tensor out = Tensor::zeros(DType::kF32, t.shape);
  auto values = out.span<float>();
  switch (t.dtype) {
    case DType::kF32:
      if (!source.empty()) std::memcpy(values.data(), source.data(), source.size());
      break;
    case DType::kBF16:
    case DType::kF16:
      for (size_t i = 0; i < values.size(); ++i) {
        uint16_t bits;
        std::memcpy(&bits, source.data() + 2 * i, 2);  // unaligned-safe; files and hosts are little-endian
        values[i] = t.dtype == DType::kBF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
      }
      break;
    default:
      fail(ErrorKind::kUnsupported, "{}: tensor '{}' is {}, expected F32, F16 or BF16 for a float read", path_.string(),
           name, dtype_name(t.dtype));
  }
  return out;
}

void SafetensorsWriter::add(std::string name, DType dtype, Shape shape, std::span<const std::byte> data) {
  if (name == "__metadata__" || name.empty()) fail(ErrorKind::kInvalidRequest, "invalid tensor name '{}'", name);
  for (const Entry& e : entries_) {
    if (e.name == name) fail(ErrorKind::kInvalidRequest, "tensor '{}' added twice", name);
  }
  const auto expected = dtype_bytes_for(dtype, static_cast<uint64_t>(shape_elements(shape)));
  if (!expected || *expected != data.size()) {
    fail(ErrorKind::kInvalidRequest, "tensor '{}': shape {} of {} does not match {} bytes of data", name,
         shape_string(shape), dtype_name(dtype), data.size());
  }
  entries_.push_back({std::move(name), dtype, std::move(shape), {data.begin(), data.end()}});
}

void SafetensorsWriter::add(std::string name, const Tensor& tensor) {
  if (tensor.device().kind != DeviceKind::kCpu) {
    fail(ErrorKind::kInternal, "tensor '{}' must be on the host to be written", name);
  }
  const auto* data = static_cast<const std::byte*>(tensor.data());
  add(std::move(name), tensor.dtype(), tensor.shape(), {data, data == nullptr ? 0 : tensor.bytes()});
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::vector<std::byte> SafetensorsWriter::serialize() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    header[e.name] = {
        {"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.data.size()}}};
    offset += e.data.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  std::vector<std::byte> out(8 + text.size() + offset);
  uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<std::byte>((length >> (8 * i)) & 0xFF);
  std::memcpy(out.data() + 8, text.data(), text.size());
  size_t cursor = 8 + text.size();
  for (const Entry& e : entries_) {
    if (!e.data.empty()) std::memcpy(out.data() + cursor, e.data.data(), e.data.size());
    cursor += e.data.size();
  }
  return out;
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  const auto image = serialize();
  std::filesystem::path temporary = path;
  temporary += ".partial";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) fail(ErrorKind::kInvalidRequest, "{}: cannot open for writing", temporary.string());
    out.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
    if (!out) fail(ErrorKind::kInvalidRequest, "{}: write failed", temporary.string());
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) fail(ErrorKind::kInvalidRequest, "{}: cannot rename into place: {}", path.string(), error.message());
}

}  // namespace loom::weights
