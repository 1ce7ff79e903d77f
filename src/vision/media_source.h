#pragma once
// Where an image in a request comes from. A reference is one of: a data URL (`data:image/<type>;base64,…`), raw
// base64, a local file (`file://…` or a path) that must lie inside the configured media folder, or an http(s) URL,
// which is returned unresolved as a remote marker: fetching it, with the address checks of address_policy.h, is the
// server's job. Claimed MIME types are recorded but never trusted; decode_image detects the type from the bytes.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::vision {

struct MediaOptions {
  size_t max_bytes = size_t{20} << 20;             // decoded bytes, whatever the source
  std::optional<std::filesystem::path> media_dir;  // local files allowed only below this folder; none = refused
};

struct MediaSource {
  enum class Kind { kBytes, kRemote };
  Kind kind = Kind::kBytes;
  std::vector<uint8_t> bytes;  // kBytes
  std::string url;             // kRemote
  std::string claimed_type;    // from a data URL, informative only
};

// Strict base64 (RFC 4648 alphabet, '=' padding only at the end, no whitespace); throws Error(kInvalidRequest) on a
// bad character or length, or when the decoded size would exceed max_bytes (checked before decoding).
std::vector<uint8_t> decode_base64(std::string_view text, size_t max_bytes);

// Throws Error(kInvalidRequest) for malformed references, paths outside the media folder (after resolving `..` and
// symlinks), oversize data, and Error(kNotFound) for missing files.
MediaSource resolve_media(std::string_view reference, const MediaOptions& options);

}  // namespace loom::vision
