#pragma once
// Test helpers: files in and out of a per-test temporary folder, and the PIL/numpy reference
// (tests/vision/pil_reference.py, run with /usr/bin/python3) that the vision code is checked against.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "vision/image.h"

namespace loom::vision::testing {

inline std::filesystem::path source_dir() {
  return LOOM_SOURCE_DIR;
}

// A fresh folder for one test, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    path_ = std::filesystem::temp_directory_path() / ("loom_vision_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// Runs `pil_reference.py <command> <manifest>`; a failing reference fails the test.
inline void run_reference(const std::string& command, const std::filesystem::path& manifest) {
  const std::string line = "/usr/bin/python3 '" + (source_dir() / "tests/vision/pil_reference.py").string() + "' " +
                           command + " '" + manifest.string() + "'";
  const int status = std::system(line.c_str());
  ASSERT_EQ(status, 0) << "reference failed: " << line;
}

// A deterministic picture with texture everywhere (gradients plus noise), so resampling errors show.
inline Image test_picture(int width, int height, uint32_t seed) {
  Image image(width, height);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(-40, 40);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.row(y) + x * 3;
      const int base[3] = {(x * 255) / std::max(width - 1, 1), (y * 255) / std::max(height - 1, 1),
                           ((x ^ y) * 7) & 255};
      for (int c = 0; c < 3; ++c) p[c] = static_cast<uint8_t>(std::clamp(base[c] + noise(rng), 0, 255));
    }
  }
  return image;
}

}  // namespace loom::vision::testing
