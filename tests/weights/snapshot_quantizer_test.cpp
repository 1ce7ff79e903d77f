// quantize_snapshot on the bundled Gemma 3 snapshots (Hub naming, a SigLIP tower, a Gemma 3 projector) and on
// hand-built ones. Quantized tensors are checked byte for byte against quant::quantize() applied to the bf16-rounded
// source (quantize() is itself pinned to the numpy reference in quant_golden_test.cpp), and one snapshot per fixture
// case is checked directly against tests/golden/quant (tools/reference/quant_vectors.py). Which tensors must be
// quantized is stated here from the model structure, not taken from the code under test.

#include "weights/snapshot_quantizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <vector>

#include "core/error.h"
#include "test_files.h"
#include "weights/quant/quantize.h"
#include "weights/quantize_policy.h"
#include "weights/safetensors.h"
#include "weights/snapshot.h"

namespace loom::weights {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;
using testing::ScratchDir;

const fs::path kTinyGemma3 = testing::source_dir() / "tests/golden/snapshots/tiny_gemma3";
const fs::path kTinyGemma3Sharded = testing::source_dir() / "tests/golden/snapshots/tiny_gemma3_sharded";
const fs::path kTinyGemma3Vlm = testing::source_dir() / "tests/golden/models/tiny_gemma3_vlm";

// The text model's Linear and Embedding weights in these fixtures (Hub naming).
const std::regex kTextLinear(
    R"(language_model\.model\.(embed_tokens|layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj))\.weight)");

bool expect_quantized(const TensorInfo& t, int group) {
  return std::regex_match(t.name, kTextLinear) && t.shape.size() == 2 && t.shape[1] % group == 0;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::byte> bytes_of(std::span<const std::byte> s) {
  return {s.begin(), s.end()};
}
std::vector<std::byte> bytes_of(const Tensor& t) {
  const auto* p = static_cast<const std::byte*>(t.data());
  return {p, p + t.bytes()};
}

// Round-to-nearest-even to bf16 by integer arithmetic on the float32 bits (finite inputs).
float round_to_bf16(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, 4);
  bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000u;
  float out = 0.0f;
  std::memcpy(&out, &bits, 4);
  return out;
}

std::vector<float> bf16_source(const SafetensorsFile& file, const std::string& name) {
  const Tensor t = file.read_f32(name);
  std::vector<float> out(t.span<float>().begin(), t.span<float>().end());
  for (float& v : out) v = round_to_bf16(v);
  return out;
}

float e4m3_value(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  const float magnitude = e == 0 ? std::ldexp(m / 8.0f, -6) : std::ldexp(1.0f + m / 8.0f, e - 7);
  return (b & 0x80) ? -magnitude : magnitude;
}

// |dequantize(q) − w| stays within what one rounding step of the format allows, group by group.
void expect_within_group_bound(const Weight& q, const std::vector<float>& w, const std::string& name) {
  std::vector<float> deq(static_cast<size_t>(q.rows * q.cols));
  quant::dequantize_rows(q, 0, q.rows, deq.data());
  const int64_t groups = q.cols / q.quant.group_size;
  int failures = 0;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const size_t gi = static_cast<size_t>(r * groups + g);
      float amax = 0.0f;
      for (int64_t c = g * q.quant.group_size; c < (g + 1) * q.quant.group_size; ++c) {
        amax = std::max(amax, std::fabs(w[static_cast<size_t>(r * q.cols + c)]));
      }
      float bound = 0.0f;
      if (q.quant.mode == QuantMode::kAffine) {
        uint16_t sb = 0, bb = 0;
        std::memcpy(&sb, static_cast<const std::byte*>(q.scales.data()) + 2 * gi, 2);
        std::memcpy(&bb, static_cast<const std::byte*>(q.biases.data()) + 2 * gi, 2);
        uint32_t s32 = uint32_t{sb} << 16, b32 = uint32_t{bb} << 16;
        float s = 0.0f, b = 0.0f;
        std::memcpy(&s, &s32, 4);
        std::memcpy(&b, &b32, 4);
        // One step: MLX re-derives the scale from the edge (s = edge / round(edge / s)), which can shrink it by up
        // to 1/16 (4-bit; less for fewer bits) so the far end of the group clips by up to one step; elsewhere the
        // error is half a step. Plus the bf16 rounding of the scale (times q) and of the bias.
        bound = std::fabs(s) * (1 + 1.0f / 128) + (std::ldexp(1.0f, q.quant.bits) - 1) * std::fabs(s) / 256 +
                std::fabs(b) / 256;
      } else {
        const uint8_t code = static_cast<const uint8_t*>(q.scales.data())[gi];
        const float sd = q.quant.mode == QuantMode::kNvfp4 ? e4m3_value(code) : std::ldexp(1.0f, code - 127);
        if (q.quant.mode == QuantMode::kMxfp8) {
          bound = std::max(amax / 16, std::ldexp(sd, -10)) + std::max(0.0f, amax - 448 * sd);
        } else {
          bound = sd + std::max(0.0f, amax - 6 * sd);  // half the widest E2M1 step (4 → 6), or the saturation
        }
      }
      bound = bound * 1.0001f + 1e-7f;
      for (int64_t c = g * q.quant.group_size; c < (g + 1) * q.quant.group_size; ++c) {
        const size_t i = static_cast<size_t>(r * q.cols + c);
        if (std::fabs(deq[i] - w[i]) > bound && failures++ < 3) {
          ADD_FAILURE() << name << " row " << r << " col " << c << ": " << deq[i] << " vs " << w[i] << " bound "
                        << bound;
        }
      }
    }
  }
}

struct Mode {
  const char* mode;
  int bits;
  int group;
};
const Mode kModes[] = {{"affine", 4, 64}, {"affine", 3, 32}, {"affine", 8, 128},
                       {"mxfp4", 4, 32},  {"mxfp8", 8, 32},  {"nvfp4", 4, 16}};

std::string mode_name(QuantMode mode) {
  switch (mode) {
    case QuantMode::kAffine:
      return "affine";
    case QuantMode::kMxfp4:
      return "mxfp4";
    case QuantMode::kMxfp8:
      return "mxfp8";
    case QuantMode::kNvfp4:
      return "nvfp4";
    case QuantMode::kNone:
      break;
  }
  return "none";
}

QuantSpec spec_of(const Mode& m) {
  return resolve_quant_spec(m.mode, m.bits, m.group);
}

// Everything the issue promises about one quantized snapshot.
int check_quantized_snapshot(const fs::path& source_dir, const fs::path& out_dir, const QuantSpec& spec) {
  SCOPED_TRACE(source_dir.filename().string() + " " + quant_spec_name(spec));
  const Snapshot source = Snapshot::open(source_dir);
  const Snapshot out = Snapshot::open(out_dir);
  EXPECT_EQ(out.quant_config().source, QuantConfig::Source::kMlx);
  EXPECT_EQ(out.quant_config().base, spec);
  EXPECT_TRUE(out.quant_config().overrides.empty());
  for (const SafetensorsFile& f : out.files()) EXPECT_EQ(f.metadata().at("format"), "mlx");

  size_t expected_outputs = 0;
  int quantized = 0;
  for (const SafetensorsFile& file : source.files()) {
    for (const TensorInfo& t : file.tensors()) {
      SCOPED_TRACE(t.name);
      const auto ref = out.find(t.name);
      if (!ref) {
        ADD_FAILURE() << "missing in the output";
        continue;
      }
      EXPECT_EQ(ref->info->name, t.name) << "source naming is kept";
      if (!expect_quantized(t, spec.group_size)) {
        ++expected_outputs;
        EXPECT_EQ(ref->info->dtype, t.dtype);
        EXPECT_EQ(ref->info->shape, t.shape);
        EXPECT_EQ(bytes_of(ref->file->bytes(t.name)), bytes_of(file.bytes(t.name))) << "kept tensors are copied";
        if (t.name.ends_with(".weight")) {
          EXPECT_FALSE(out.find(t.name.substr(0, t.name.size() - 7) + ".scales").has_value());
        }
        continue;
      }
      ++quantized;
      const std::string module = t.name.substr(0, t.name.size() - std::string(".weight").size());
      const std::vector<float> w = bf16_source(file, t.name);
      const Weight expected = quant::quantize(w.data(), t.shape[0], t.shape[1], spec, DType::kBF16);
      Weight actual;
      actual.rows = t.shape[0];
      actual.cols = t.shape[1];
      actual.quant = spec;
      actual.values = ref->file->to_tensor(t.name);
      actual.scales = out.at(module + ".scales").file->to_tensor(module + ".scales");
      EXPECT_EQ(actual.values.dtype(), DType::kU32);
      EXPECT_EQ(actual.values.shape(), (Shape{t.shape[0], t.shape[1] * spec.bits / 32}));
      EXPECT_EQ(actual.scales.shape(), (Shape{t.shape[0], t.shape[1] / spec.group_size}));
      EXPECT_EQ(actual.scales.dtype(), spec.mode == QuantMode::kAffine ? DType::kBF16 : DType::kU8);
      EXPECT_EQ(bytes_of(actual.values), bytes_of(expected.values));
      EXPECT_EQ(bytes_of(actual.scales), bytes_of(expected.scales));
      expected_outputs += 2;
      if (spec.mode == QuantMode::kAffine) {
        actual.biases = out.at(module + ".biases").file->to_tensor(module + ".biases");
        EXPECT_EQ(bytes_of(actual.biases), bytes_of(expected.biases));
        ++expected_outputs;
      } else {
        EXPECT_FALSE(out.find(module + ".biases").has_value());
      }
      quant::validate(actual, t.name);
      expect_within_group_bound(actual, w, t.name);
    }
  }
  EXPECT_EQ(out.tensor_names().size(), expected_outputs);

  // config.json: the source's keys unchanged, plus both quantization keys.
  json config = json::parse(read_file(out_dir / "config.json"));
  const json quantization = {{"group_size", spec.group_size}, {"bits", spec.bits}, {"mode", mode_name(spec.mode)}};
  EXPECT_EQ(config["quantization"], quantization);
  EXPECT_EQ(config["quantization_config"], quantization);
  config.erase("quantization");
  config.erase("quantization_config");
  EXPECT_EQ(config, json::parse(read_file(source_dir / "config.json")));

  // Every other file is copied unchanged; the source's weight files and index are not.
  for (const auto& entry : fs::directory_iterator(source_dir)) {
    const std::string name = entry.path().filename().string();
    if (name == "config.json" || name.ends_with(".safetensors") || name.ends_with(".index.json")) continue;
    EXPECT_TRUE(fs::exists(out_dir / name)) << name;
    EXPECT_EQ(read_file(out_dir / name), read_file(entry.path())) << name;
  }
  return quantized;
}

TEST(SnapshotQuantizer, QuantizesTheTinyGemma3SnapshotsInEveryMode) {
  // Quantized Linear/Embedding weights by group size. tiny_gemma3: embed [256, 64] and per layer q/o [64, 64],
  // k/v [32, 64], gate/up [32, 64], down [64, 32], 2 layers. tiny_gemma3_vlm: embed [512, 64] and per layer
  // q/k/v/o and gate/up with 64 inputs, down with 128, 6 layers.
  const auto expected_count = [](const fs::path& source, int group) {
    if (source == kTinyGemma3) return group == 128 ? 0 : group == 64 ? 1 + 2 * 6 : 1 + 2 * 7;
    return group == 128 ? 6 : 1 + 6 * 7;
  };
  for (const fs::path& source : {kTinyGemma3, kTinyGemma3Vlm}) {
    for (const Mode& m : kModes) {
      ScratchDir scratch;
      const auto out = scratch / "q";
      const SnapshotQuantizeResult result = quantize_snapshot(source, out, {.spec = spec_of(m)});
      const int quantized = check_quantized_snapshot(source, out, spec_of(m));
      EXPECT_EQ(quantized, expected_count(source, m.group)) << m.mode << " " << m.group;
      EXPECT_EQ(result.tensors_quantized, quantized);
      EXPECT_EQ(result.tensors_quantized + result.tensors_kept,
                static_cast<int64_t>(Snapshot::open(source).tensor_names().size()));
      EXPECT_EQ(result.files, std::vector<std::string>{"model.safetensors"});
      EXPECT_FALSE(fs::exists(out / "model.safetensors.index.json"));
      uint64_t source_bytes = 0, out_bytes = 0;
      const Snapshot source_snapshot = Snapshot::open(source), out_snapshot = Snapshot::open(out);
      for (const auto& f : source_snapshot.files()) {
        for (const auto& t : f.tensors()) source_bytes += t.bytes();
      }
      for (const auto& f : out_snapshot.files()) {
        for (const auto& t : f.tensors()) out_bytes += t.bytes();
      }
      EXPECT_EQ(result.bytes_before, source_bytes);
      EXPECT_EQ(result.bytes_after, out_bytes);
      if (quantized > 0) {
        EXPECT_LT(result.bytes_after, result.bytes_before);
      }
    }
  }
}

// A sharded input becomes one file; a small shard limit splits the output and writes an index.
TEST(SnapshotQuantizer, ShardsTheOutputBySize) {
  ScratchDir scratch;
  const QuantSpec spec = resolve_quant_spec("affine", std::nullopt, std::nullopt);
  const SnapshotQuantizeResult merged = quantize_snapshot(kTinyGemma3Sharded, scratch / "merged", {.spec = spec});
  EXPECT_EQ(merged.files, std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(fs::exists(scratch / "merged" / "model.safetensors.index.json"));
  check_quantized_snapshot(kTinyGemma3Sharded, scratch / "merged", spec);

  constexpr uint64_t kLimit = 100'000;
  const SnapshotQuantizeResult split =
      quantize_snapshot(kTinyGemma3Vlm, scratch / "split", {.spec = spec, .max_shard_bytes = kLimit});
  ASSERT_GT(split.files.size(), 1u);
  const size_t n = split.files.size();
  for (size_t i = 0; i < n; ++i) {
    char expected[64];
    std::snprintf(expected, sizeof expected, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    EXPECT_EQ(split.files[i], expected);
    const SafetensorsFile f = SafetensorsFile::open(scratch / "split" / split.files[i]);
    uint64_t data = 0;
    for (const auto& t : f.tensors()) data += t.bytes();
    EXPECT_TRUE(data <= kLimit || f.tensors().size() == 1) << split.files[i];
  }
  const json index = json::parse(read_file(scratch / "split" / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], split.bytes_after);
  const Snapshot out = Snapshot::open(scratch / "split");
  EXPECT_TRUE(out.has_index());
  EXPECT_EQ(index["weight_map"].size(), out.tensor_names().size());
  for (const auto& [name, file] : index["weight_map"].items()) {
    EXPECT_TRUE(SafetensorsFile::open(scratch / "split" / file.get<std::string>()).contains(name)) << name;
  }
  check_quantized_snapshot(kTinyGemma3Vlm, scratch / "split", spec);
}

// Writes a one-file snapshot: config.json and the given tensors.
void write_snapshot(const fs::path& dir, const std::string& config, const SafetensorsWriter& writer) {
  fs::create_directories(dir);
  testing::write_text(dir / "config.json", config);
  writer.write(dir / "model.safetensors");
}

const std::string kTextConfig = R"({"architectures":["Gemma3ForCausalLM"],"model_type":"gemma3_text"})";

// The quantized bytes equal the independent numpy reference's, read from tests/golden/quant: the fixture's input
// matrix (bf16-exact values) is stored as an F32 Linear weight.
TEST(SnapshotQuantizer, MatchesTheNumpyReferenceVectors) {
  const fs::path golden = testing::source_dir() / "tests/golden/quant";
  const json manifest = json::parse(read_file(golden / "manifest.json"));
  int checked = 0;
  for (const json& c : manifest["cases"]) {
    const std::string scale_dtype = c["scale_dtype"];
    if (scale_dtype == "F16" || scale_dtype == "F32" || c["name"] == "nvfp4_global") continue;  // not MLX defaults
    SCOPED_TRACE(c["name"].get<std::string>());
    const std::string blob = read_file(golden / c["file"].get<std::string>());
    const auto section = [&](const char* key) {
      const auto& range = c["sections"][key];
      const auto* p = reinterpret_cast<const std::byte*>(blob.data()) + range[0].get<size_t>();
      return std::vector<std::byte>(p, p + range[1].get<size_t>());
    };
    const int64_t rows = c["rows"], cols = c["cols"];
    ScratchDir scratch;
    SafetensorsWriter writer;
    writer.add("model.layers.0.mlp.up_proj.weight", DType::kF32, {rows, cols}, section("input"));
    write_snapshot(scratch / "in", kTextConfig, writer);
    const QuantSpec spec =
        resolve_quant_spec(c["mode"].get<std::string>(), c["bits"].get<int>(), c["group_size"].get<int>());
    quantize_snapshot(scratch / "in", scratch / "out", {.spec = spec});
    const SafetensorsFile out = SafetensorsFile::open(scratch / "out" / "model.safetensors");
    EXPECT_EQ(bytes_of(out.bytes("model.layers.0.mlp.up_proj.weight")), section("words"));
    EXPECT_EQ(bytes_of(out.bytes("model.layers.0.mlp.up_proj.scales")), section("scales"));
    if (spec.mode == QuantMode::kAffine) {
      EXPECT_EQ(bytes_of(out.bytes("model.layers.0.mlp.up_proj.biases")), section("biases"));
    } else {
      EXPECT_FALSE(out.contains("model.layers.0.mlp.up_proj.biases"));
    }
    ++checked;
  }
  EXPECT_EQ(checked, 21);  // affine 6 bits × 3 groups, mxfp4, mxfp8, nvfp4
}

// F32 and F16 sources are rounded to bf16 (nearest even) before quantizing, as MLX converts them.
TEST(SnapshotQuantizer, RoundsF32AndF16SourcesToBf16First) {
  const int64_t rows = 8, cols = 64;
  std::vector<float> f32(static_cast<size_t>(rows * cols));
  std::vector<uint16_t> f16(f32.size());
  uint32_t state = 12345;
  for (size_t i = 0; i < f32.size(); ++i) {
    state = state * 1664525u + 1013904223u;
    f32[i] = (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 0.37f;  // not bf16-exact
  }
  // The same values on a 2^-12 grid, exact in binary16 (|x| < 0.19), encoded by the field formula; with up to 10
  // significant bits they exercise bf16's rounding, ties included.
  std::vector<float> f16_values(f32.size());
  for (size_t i = 0; i < f32.size(); ++i) {
    const float h = std::ldexp(std::round(std::ldexp(f32[i], 12)), -12);
    f16_values[i] = h;
    const uint16_t sign = std::signbit(h) ? 0x8000 : 0;
    const float a = std::fabs(h);
    if (a == 0.0f) {
      f16[i] = sign;
    } else if (a < std::ldexp(1.0f, -14)) {
      f16[i] = static_cast<uint16_t>(sign | static_cast<uint16_t>(std::ldexp(a, 24)));
    } else {
      const int e = std::ilogb(a);
      const auto mantissa = static_cast<uint16_t>(std::ldexp(a, 10 - e) - 1024);
      f16[i] = static_cast<uint16_t>(sign | ((e + 15) << 10) | mantissa);
    }
  }
  ScratchDir scratch;
  SafetensorsWriter writer;
  writer.add("model.layers.0.mlp.up_proj.weight", DType::kF32, {rows, cols},
             {reinterpret_cast<const std::byte*>(f32.data()), f32.size() * 4});
  writer.add("model.layers.0.mlp.down_proj.weight", DType::kF16, {rows, cols},
             {reinterpret_cast<const std::byte*>(f16.data()), f16.size() * 2});
  write_snapshot(scratch / "in", kTextConfig, writer);
  for (const char* mode : {"affine", "mxfp4", "nvfp4"}) {
    const QuantSpec spec = resolve_quant_spec(mode, std::nullopt, std::nullopt);
    ScratchDir out;
    quantize_snapshot(scratch / "in", out / "q", {.spec = spec});
    const SafetensorsFile file = SafetensorsFile::open(out / "q" / "model.safetensors");
    for (const auto& [module, source] : {std::pair{std::string("model.layers.0.mlp.up_proj"), f32},
                                         std::pair{std::string("model.layers.0.mlp.down_proj"), f16_values}}) {
      std::vector<float> rounded = source;
      for (float& v : rounded) v = round_to_bf16(v);
      const Weight expected = quant::quantize(rounded.data(), rows, cols, spec);
      EXPECT_EQ(bytes_of(file.bytes(module + ".weight")), bytes_of(expected.values)) << module << " " << mode;
      EXPECT_EQ(bytes_of(file.bytes(module + ".scales")), bytes_of(expected.scales)) << module << " " << mode;
    }
  }
}

std::string error_of(const std::function<void()>& f, ErrorKind kind) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  return "no error";
}

// Copies a fixture into a scratch folder, so tests that point --out at the model can never touch the repository.
fs::path copy_fixture(const ScratchDir& scratch, const fs::path& fixture) {
  const fs::path dir = scratch / "model";
  fs::copy(fixture, dir, fs::copy_options::recursive);
  return dir;
}

TEST(SnapshotQuantizer, RefusesToOverwriteWithoutForce) {
  ScratchDir scratch;
  const QuantSpec spec = resolve_quant_spec("mxfp4", std::nullopt, std::nullopt);
  const fs::path out = scratch / "out";
  fs::create_directories(out);
  quantize_snapshot(kTinyGemma3, out, {.spec = spec});  // an empty folder may be filled
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));

  testing::write_text(out / "marker", "keep me");
  EXPECT_THAT(error_of([&] { quantize_snapshot(kTinyGemma3, out, {.spec = spec}); }, ErrorKind::kInvalidRequest),
              HasSubstr("already exists and is not empty; pass --force"));
  EXPECT_EQ(read_file(out / "marker"), "keep me");

  quantize_snapshot(kTinyGemma3, out, {.spec = spec, .force = true});
  EXPECT_FALSE(fs::exists(out / "marker"));
  check_quantized_snapshot(kTinyGemma3, out, spec);

  // Never onto the input, into it, or around it, even with --force.
  const fs::path model = copy_fixture(scratch, kTinyGemma3);
  const std::string before = read_file(model / "model.safetensors");
  for (const fs::path& target : {model, model / "sub", fs::path(scratch.path())}) {
    EXPECT_THAT(
        error_of([&] { quantize_snapshot(model, target, {.spec = spec, .force = true}); }, ErrorKind::kInvalidRequest),
        HasSubstr("must not be the model folder"))
        << target;
  }
  EXPECT_EQ(read_file(model / "model.safetensors"), before);
  EXPECT_FALSE(fs::exists(model / "sub"));
}

TEST(SnapshotQuantizer, RefusesQuantizedInput) {
  ScratchDir scratch;
  const QuantSpec spec = resolve_quant_spec("affine", std::nullopt, std::nullopt);
  quantize_snapshot(kTinyGemma3, scratch / "q", {.spec = spec});
  EXPECT_THAT(
      error_of([&] { quantize_snapshot(scratch / "q", scratch / "qq", {.spec = spec}); }, ErrorKind::kInvalidRequest),
      HasSubstr("already quantized (affine-4/g64)"));

  // MLX tensors without a quantization key in the config are caught too.
  SafetensorsWriter writer;
  const std::vector<std::byte> packed(64 * 8 * 4), scales(64 * 2 * 2);
  writer.add("model.layers.0.mlp.up_proj.weight", DType::kU32, {64, 8}, packed);
  writer.add("model.layers.0.mlp.up_proj.scales", DType::kBF16, {64, 2}, scales);
  write_snapshot(scratch / "bare", kTextConfig, writer);
  EXPECT_THAT(error_of([&] { quantize_snapshot(scratch / "bare", scratch / "qq", {.spec = spec}); },
                       ErrorKind::kInvalidRequest),
              HasSubstr("is quantized storage"));

  // A weight to quantize must be float.
  SafetensorsWriter fp8;
  fp8.add("model.layers.0.mlp.up_proj.weight", DType::kF8E4M3, {64, 64}, std::vector<std::byte>(64 * 64));
  write_snapshot(scratch / "fp8", kTextConfig, fp8);
  EXPECT_THAT(
      error_of([&] { quantize_snapshot(scratch / "fp8", scratch / "qq", {.spec = spec}); }, ErrorKind::kUnsupported),
      HasSubstr("'model.layers.0.mlp.up_proj.weight' is F8_E4M3"));
  EXPECT_FALSE(fs::exists(scratch / "qq"));
}

TEST(SnapshotQuantizer, FailureLeavesNothingBehind) {
  ScratchDir scratch;
  std::vector<float> w(32 * 64, 0.25f);
  w[5 * 64 + 7] = std::nanf("");
  SafetensorsWriter writer;
  writer.add("model.layers.0.mlp.gate_proj.weight", DType::kF32, {32, 64},
             {reinterpret_cast<const std::byte*>(w.data()), w.size() * 4});
  write_snapshot(scratch / "in", kTextConfig, writer);
  fs::create_directories(scratch / "parent");
  const QuantSpec spec = resolve_quant_spec("affine", std::nullopt, std::nullopt);
  EXPECT_THAT(error_of([&] { quantize_snapshot(scratch / "in", scratch / "parent" / "out", {.spec = spec}); },
                       ErrorKind::kInvalidRequest),
              HasSubstr("'model.layers.0.mlp.gate_proj.weight' holds nan at row 5, column 7"));
  EXPECT_TRUE(fs::is_empty(scratch / "parent"));

  // A failed --force run keeps the previous output.
  fs::create_directories(scratch / "parent" / "out");
  testing::write_text(scratch / "parent" / "out" / "marker", "previous");
  EXPECT_THAT(
      error_of([&] { quantize_snapshot(scratch / "in", scratch / "parent" / "out", {.spec = spec, .force = true}); },
               ErrorKind::kInvalidRequest),
      HasSubstr("holds nan"));
  EXPECT_EQ(read_file(scratch / "parent" / "out" / "marker"), "previous");
  EXPECT_EQ(std::distance(fs::directory_iterator(scratch / "parent"), fs::directory_iterator()), 1);
}

TEST(SnapshotQuantizer, ReportsProgressPerTensor) {
  ScratchDir scratch;
  std::vector<int64_t> done;
  uint64_t last_bytes = 0, total = 0;
  const auto result = quantize_snapshot(
      kTinyGemma3, scratch / "q",
      {.spec = resolve_quant_spec("nvfp4", std::nullopt, std::nullopt), .progress = [&](const QuantizeProgress& p) {
         done.push_back(p.tensors_done);
         EXPECT_GE(p.bytes_done, last_bytes);
         last_bytes = p.bytes_done;
         total = p.bytes_total;
       }});
  const auto count = static_cast<int64_t>(Snapshot::open(kTinyGemma3).tensor_names().size());
  ASSERT_EQ(static_cast<int64_t>(done.size()), count);
  EXPECT_EQ(done.back(), count);
  EXPECT_EQ(last_bytes, total);
  EXPECT_EQ(total, result.bytes_before);
}

}  // namespace
}  // namespace loom::weights
