#pragma once
// Helpers for weights tests: scratch directories and hand-built safetensors files.

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/scratch_dir.h"

namespace loom::weights::testing {

using loom::test_support::ScratchDir;

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  write_bytes(path, text);
}

inline std::string le64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

// length field + header text + `data` (the header is written exactly as given: no padding).
inline std::string safetensors_image(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

inline std::filesystem::path source_dir() {
  return LOOM_SOURCE_DIR;
}

}  // namespace loom::weights::testing
