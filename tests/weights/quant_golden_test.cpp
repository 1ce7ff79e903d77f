// Byte-for-byte comparison with known-answer vectors written by tools/reference/quant_vectors.py, an independent
// numpy implementation of MLX's quantizers (see that script for how the fixtures are built).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "weights/quant/quantize.h"

namespace loom::weights::quant {
namespace {

const std::string kGoldenDir = std::string(LOOM_SOURCE_DIR) + "/tests/golden/quant/";

struct Case {
  nlohmann::json meta;
  std::vector<char> blob;

  std::vector<char> section(const std::string& key) const {
    const auto& range = meta["sections"][key];
    const auto offset = range[0].get<size_t>(), length = range[1].get<size_t>();
    return {blob.begin() + static_cast<std::ptrdiff_t>(offset),
            blob.begin() + static_cast<std::ptrdiff_t>(offset + length)};
  }
  template <typename T>
  std::vector<T> section_as(const std::string& key) const {
    const std::vector<char> bytes = section(key);
    std::vector<T> out(bytes.size() / sizeof(T));
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
    return out;
  }
};

std::vector<Case> load_cases() {
  std::ifstream manifest(kGoldenDir + "manifest.json");
  EXPECT_TRUE(manifest.good()) << "missing " << kGoldenDir << "manifest.json";
  std::vector<Case> cases;
  if (!manifest.good()) return cases;
  const nlohmann::json root = nlohmann::json::parse(manifest);
  for (const auto& meta : root["cases"]) {
    std::ifstream file(kGoldenDir + meta["file"].get<std::string>(), std::ios::binary);
    cases.push_back({meta, std::vector<char>(std::istreambuf_iterator<char>(file), {})});
  }
  return cases;
}

QuantSpec spec_of(const nlohmann::json& meta) {
  const std::string mode = meta["mode"];
  QuantSpec spec;
  spec.mode = mode == "affine"  ? QuantMode::kAffine
              : mode == "mxfp4" ? QuantMode::kMxfp4
              : mode == "mxfp8" ? QuantMode::kMxfp8
                                : QuantMode::kNvfp4;
  spec.bits = meta["bits"];
  spec.group_size = meta["group_size"];
  return spec;
}

float float_from_bits(uint32_t bits) {
  float value = 0.0f;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

std::vector<char> tensor_bytes(const Tensor& t) {
  if (t.empty()) return {};
  const auto* p = static_cast<const char*>(t.data());
  return {p, p + t.bytes()};
}

void expect_same_floats(const std::vector<float>& actual, const std::vector<float>& expected, const std::string& name) {
  ASSERT_EQ(actual.size(), expected.size()) << name;
  int mismatches = 0;
  for (size_t i = 0; i < actual.size() && mismatches < 5; ++i) {
    uint32_t a = 0, e = 0;
    std::memcpy(&a, &actual[i], 4);
    std::memcpy(&e, &expected[i], 4);
    if (a != e) {
      ADD_FAILURE() << name << " element " << i << ": " << actual[i] << " != expected " << expected[i];
      ++mismatches;
    }
  }
}

TEST(QuantGolden, FixturesArePresent) {
  const auto cases = load_cases();
  EXPECT_EQ(cases.size(), 24u);  // 18 affine + affine F16/F32 scales + mxfp4 + mxfp8 + nvfp4 ± global scale
}

TEST(QuantGolden, QuantizerMatchesReferenceBytes) {
  for (const Case& c : load_cases()) {
    const std::string name = c.meta["name"];
    SCOPED_TRACE(name);
    const int64_t rows = c.meta["rows"], cols = c.meta["cols"];
    const std::vector<float> input = c.section_as<float>("input");
    ASSERT_EQ(input.size(), static_cast<size_t>(rows * cols));
    const QuantSpec spec = spec_of(c.meta);
    Weight weight;
    if (c.meta.contains("global_scale_bits")) {
      weight = quantize_nvfp4(input.data(), rows, cols, float_from_bits(c.meta["global_scale_bits"]));
    } else {
      const auto scale_dtype = dtype_from_name(c.meta["scale_dtype"].get<std::string>());
      ASSERT_TRUE(scale_dtype.has_value());
      weight = quantize(input.data(), rows, cols, spec, *scale_dtype);
    }
    validate(weight, name);
    EXPECT_EQ(tensor_bytes(weight.values), c.section("words"));
    EXPECT_EQ(tensor_bytes(weight.scales), c.section("scales"));
    EXPECT_EQ(tensor_bytes(weight.biases), c.section("biases"));
    EXPECT_EQ(weight.output_scale, float_from_bits(c.meta["output_scale_bits"]));
  }
}

// Dequantizes the fixture's own packed bytes (not our quantizer's output), whole and in row ranges.
TEST(QuantGolden, DequantizerMatchesReferenceValues) {
  for (const Case& c : load_cases()) {
    const std::string name = c.meta["name"];
    SCOPED_TRACE(name);
    const int64_t rows = c.meta["rows"], cols = c.meta["cols"];
    const QuantSpec spec = spec_of(c.meta);
    const auto scale_dtype = *dtype_from_name(c.meta["scale_dtype"].get<std::string>());
    Weight weight;
    weight.rows = rows;
    weight.cols = cols;
    weight.quant = spec;
    weight.output_scale = float_from_bits(c.meta["output_scale_bits"]);
    auto fill = [&](DType dtype, Shape shape, const std::string& key) {
      Tensor t = Tensor::zeros(dtype, std::move(shape));
      const std::vector<char> bytes = c.section(key);
      EXPECT_EQ(bytes.size(), t.bytes()) << key;
      std::memcpy(t.data(), bytes.data(), std::min(bytes.size(), t.bytes()));
      return t;
    };
    weight.values = fill(DType::kU32, {rows, cols * spec.bits / 32}, "words");
    weight.scales = fill(scale_dtype, {rows, cols / spec.group_size}, "scales");
    if (spec.mode == QuantMode::kAffine) weight.biases = fill(scale_dtype, {rows, cols / spec.group_size}, "biases");
    validate(weight, name);
    const std::vector<float> expected = c.section_as<float>("dequant");
    std::vector<float> all(static_cast<size_t>(rows * cols));
    dequantize_rows(weight, 0, rows, all.data());
    expect_same_floats(all, expected, name);
    std::vector<float> middle(static_cast<size_t>(2 * cols));
    dequantize_rows(weight, 1, 3, middle.data());
    expect_same_floats(middle, std::vector<float>(expected.begin() + cols, expected.begin() + 3 * cols), name);
  }
}

}  // namespace
}  // namespace loom::weights::quant
