#include "vision/media_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>

#include "core/error.h"

namespace loom::vision {
namespace {

constexpr std::array<int8_t, 256> make_decode_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kDecode = make_decode_table();

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

bool looks_like_base64(std::string_view s) {
  if (s.empty() || s.size() % 4 != 0) return false;
  size_t body = s.size();
  while (body > 0 && s.size() - body < 2 && s[body - 1] == '=') --body;
  for (size_t i = 0; i < body; ++i) {
    if (kDecode[static_cast<uint8_t>(s[i])] < 0) return false;
  }
  return true;
}

bool is_inside(const std::filesystem::path& root, const std::filesystem::path& path) {
  auto r = root.begin(), p = path.begin();
  for (; r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *r != *p) return false;
  }
  return true;
}

std::vector<uint8_t> read_local(std::string_view reference, const MediaOptions& options) {
  if (!options.media_dir) fail(ErrorKind::kInvalidRequest, "local image files are not enabled on this server");
  std::error_code ec;
  const std::filesystem::path root = std::filesystem::canonical(*options.media_dir, ec);
  if (ec) fail(ErrorKind::kInternal, "the media folder {} does not exist", options.media_dir->string());
  std::filesystem::path requested(reference);
  if (requested.is_relative()) requested = root / requested;
  // canonical() resolves every symlink and `..`, so the containment test sees where the file really is.
  const std::filesystem::path real = std::filesystem::canonical(requested, ec);
  if (ec) fail(ErrorKind::kNotFound, "image file {} not found", std::string(reference));
  if (!is_inside(root, real)) fail(ErrorKind::kInvalidRequest, "image file {} is outside the media folder", reference);
  // Open the resolved path without following a symlink swapped in since, then check what was opened.
  const int fd = ::open(real.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail(ErrorKind::kNotFound, "image file {} cannot be opened", std::string(reference));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    fail(ErrorKind::kInvalidRequest, "image file {} is not a regular file", reference);
  }
  if (static_cast<uint64_t>(st.st_size) > options.max_bytes) {
    fail(ErrorKind::kInvalidRequest, "image file of {} bytes exceeds the limit of {} bytes", st.st_size,
         options.max_bytes);
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (got <= 0) fail(ErrorKind::kInvalidRequest, "image file {} could not be read", reference);
    done += static_cast<size_t>(got);
  }
  return bytes;
}

}  // namespace

std::vector<uint8_t> decode_base64(std::string_view text, size_t max_bytes) {
  if (text.size() % 4 != 0) {
    fail(ErrorKind::kInvalidRequest, "base64 data has length {}, not a multiple of 4", text.size());
  }
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  const size_t decoded = text.size() / 4 * 3 - padding;
  if (decoded > max_bytes) {
    fail(ErrorKind::kInvalidRequest, "base64 data decodes to {} bytes, over the limit of {} bytes", decoded, max_bytes);
  }
  std::vector<uint8_t> out;
  out.reserve(decoded);
  const size_t body = text.size() - padding;
  uint32_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; i < body; ++i) {
    const int8_t v = kDecode[static_cast<uint8_t>(text[i])];
    if (v < 0) fail(ErrorKind::kInvalidRequest, "base64 data has an invalid character at offset {}", i);
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(buffer >> bits));
      buffer &= (1u << bits) - 1;
    }
  }
  // Leftover bits before the padding must be zero (canonical encoding).
  if (buffer != 0) fail(ErrorKind::kInvalidRequest, "base64 data has non-zero padding bits");
  return out;
}

MediaSource resolve_media(std::string_view ref, const MediaOptions& options) {
  MediaSource source;
  if (ref.empty()) fail(ErrorKind::kInvalidRequest, "image reference is empty");
  if (starts_with_ci(ref, "data:")) {
    const size_t comma = ref.find(',');
    if (comma == std::string_view::npos) fail(ErrorKind::kInvalidRequest, "data URL has no ',' before its data");
    const std::string_view header = ref.substr(5, comma - 5);
    const size_t semicolon = header.rfind(';');
    if (semicolon == std::string_view::npos || header.substr(semicolon + 1) != "base64") {
      fail(ErrorKind::kInvalidRequest, "data URL must be base64 encoded (data:image/<type>;base64,...)");
    }
    source.claimed_type = std::string(header.substr(0, semicolon));
    if (!starts_with_ci(source.claimed_type, "image/")) {
      fail(ErrorKind::kInvalidRequest, "data URL type '{}' is not an image type", source.claimed_type);
    }
    source.bytes = decode_base64(ref.substr(comma + 1), options.max_bytes);
    return source;
  }
  if (starts_with_ci(ref, "http://") || starts_with_ci(ref, "https://")) {
    source.kind = MediaSource::Kind::kRemote;
    source.url = std::string(ref);
    return source;
  }
  if (starts_with_ci(ref, "file://")) {
    source.bytes = read_local(ref.substr(7), options);
    return source;
  }
  if (ref.find("://") != std::string_view::npos) {
    fail(ErrorKind::kInvalidRequest, "unsupported image URL scheme in '{}'", ref.substr(0, ref.find("://")));
  }
  // JPEG data starts "/9j/" in base64, so a valid base64 string wins over a path; paths can always say file://.
  if (looks_like_base64(ref)) {
    source.bytes = decode_base64(ref, options.max_bytes);
    return source;
  }
  source.bytes = read_local(ref, options);
  return source;
}

}  // namespace loom::vision
