// The safetensors reader against hand-built files (every header rule of weight-formats.md §1) and the writer against
// an independent parse of its output.

#include "weights/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_files.h"

namespace loom::weights {
namespace {

using ::testing::HasSubstr;
using testing::ScratchDir;

// Opens a file holding `image` and returns the error it raises (or fails the test if none).
Error open_error(const std::string& image) {
  ScratchDir dir;
  const auto path = dir / "bad.safetensors";
  testing::write_bytes(path, image);
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidFile) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("bad.safetensors"));
    return e;
  }
  ADD_FAILURE() << "no error for a malformed file";
  return Error(ErrorKind::kInternal, "");
}

std::string message_for(const std::string& header, const std::string& data) {
  return open_error(testing::safetensors_image(header, data)).what();
}

TEST(SafetensorsHeader, RejectsFilesShorterThanTheLengthField) {
  EXPECT_THAT(open_error("").what(), HasSubstr("at least 8"));
  EXPECT_THAT(open_error("\x02\0\0\0").what(), HasSubstr("at least 8"));
}

TEST(SafetensorsHeader, RejectsHeaderLengthBeyondLimitOrFile) {
  EXPECT_THAT(open_error(testing::le64(100'000'001) + "{}").what(), HasSubstr("exceeds the limit"));
  EXPECT_THAT(open_error(testing::le64(~uint64_t{0})).what(), HasSubstr("exceeds the limit"));
  EXPECT_THAT(open_error(testing::le64(10) + "{}").what(), HasSubstr("exceeds the 2 bytes"));
}

TEST(SafetensorsHeader, RequiresAJsonObjectStartingWithBrace) {
  EXPECT_THAT(message_for(" {}", ""), HasSubstr("starting with '{'"));
  EXPECT_THAT(message_for("", ""), HasSubstr("starting with '{'"));
  EXPECT_THAT(message_for("[1]", ""), HasSubstr("starting with '{'"));
  EXPECT_THAT(message_for("{\"a\":", ""), HasSubstr("not valid UTF-8 JSON"));
  EXPECT_THAT(message_for("{} x", ""), HasSubstr("not valid UTF-8 JSON"));
  // Invalid UTF-8 inside a key.
  EXPECT_THAT(message_for("{\"\xff\xfe\":{}}", ""), HasSubstr("not valid UTF-8 JSON"));
  EXPECT_THAT(message_for(std::string(20, '{') + std::string(20, '}'), ""), HasSubstr("nests deeper"));
}

TEST(SafetensorsHeader, AcceptsTrailingSpacesAndAnEmptyTensorList) {
  ScratchDir dir;
  testing::write_bytes(dir / "a.safetensors", testing::safetensors_image("{}      ", ""));
  const auto file = SafetensorsFile::open(dir / "a.safetensors");
  EXPECT_TRUE(file.tensors().empty());
}

TEST(SafetensorsHeader, ChecksEachEntry) {
  EXPECT_THAT(message_for(R"({"t":[1]})", ""), HasSubstr("tensor 't': expected an object"));
  EXPECT_THAT(message_for(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", "abcd"), HasSubstr("missing \"dtype\""));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"), HasSubstr("missing \"shape\""));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":[1]}})", "abcd"), HasSubstr("missing \"data_offsets\""));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", "abcd"),
              HasSubstr("tensor 't': unknown dtype \"F31\""));
  EXPECT_THAT(message_for(R"({"t":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", "abcd"),
              HasSubstr("dtype must be a string"));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
              HasSubstr("each shape dimension must be a non-negative integer"));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "abcd"),
              HasSubstr("non-negative integer"));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", "abcd"),
              HasSubstr("shape must be an array"));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "abcd"),
              HasSubstr("data_offsets must be [begin, end]"));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-1,4]}})", "abcd"),
              HasSubstr("data_offsets[0] must be a non-negative integer"));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", "abcd"),
              HasSubstr("begin 4 is after end 0"));
}

TEST(SafetensorsHeader, ShapeTimesDtypeMustMatchTheByteRange) {
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd"),
              HasSubstr("tensor 't': shape [2] of F32 needs 8 bytes but data_offsets span 4"));
  // Overflowing element counts and sub-byte types that do not fill whole bytes.
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", "abcd"),
              HasSubstr("too many elements"));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}})", "abcd"),
              HasSubstr("overflows"));
  EXPECT_THAT(message_for(R"({"t":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", "ab"),
              HasSubstr("does not fill whole bytes"));
}

TEST(SafetensorsHeader, RangesMustTileTheBufferExactly) {
  const std::string a = R"("a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]})";
  EXPECT_THAT(message_for("{" + a + R"(,"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", "abcdefg"),
              HasSubstr("tensor 'b': data_offsets [4, 8) extend past the data buffer of 7 bytes"));
  EXPECT_THAT(message_for("{" + a + R"(,"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", "abcdef"),
              HasSubstr("tensor 'b': data_offsets [2, 6) overlap tensor 'a'"));
  EXPECT_THAT(message_for("{" + a + R"(,"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})", "abcdefgh"),
              HasSubstr("tensor 'b': hole in the data buffer: bytes [4, 6)"));
  EXPECT_THAT(message_for(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", "abcd"),
              HasSubstr("hole in the data buffer: bytes [0, 2)"));
  EXPECT_THAT(message_for("{" + a + "}", "abcdef"), HasSubstr("tensors cover only 4 (trailing bytes)"));
}

TEST(SafetensorsHeader, MetadataIsStringToString) {
  EXPECT_THAT(message_for(R"({"__metadata__":{"format":1}})", ""), HasSubstr("\"format\" must map to a string"));
  EXPECT_THAT(message_for(R"({"__metadata__":[]})", ""), HasSubstr("__metadata__ must be an object"));
  const auto header = parse_safetensors_header(std::as_bytes(std::span(std::string_view(testing::safetensors_image(
                                                   R"({"__metadata__":{"format":"mlx"}})", "")))),
                                               "mem");
  EXPECT_EQ(header.metadata.at("format"), "mlx");
}

// MLX writes neither padding nor alignment: an odd header length and an F32 tensor at an odd offset must read right.
TEST(SafetensorsFile, ReadsUnalignedTensors) {
  const float values[3] = {1.5f, -2.25f, 1e-3f};
  std::string data = "\x07";  // one U8 first, so the floats start at buffer offset 1
  data.append(reinterpret_cast<const char*>(values), sizeof values);
  const std::string header =
      R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[3],"data_offsets":[1,13]}})";
  ASSERT_EQ(header.size() % 2, 1u);  // the data buffer starts at an odd file offset
  ScratchDir dir;
  testing::write_bytes(dir / "u.safetensors", testing::safetensors_image(header, data));
  const auto file = SafetensorsFile::open(dir / "u.safetensors");
  ASSERT_EQ(file.tensors().size(), 2u);
  EXPECT_EQ(file.tensors()[1].name, "f");
  const auto raw = file.bytes("f");
  ASSERT_EQ(raw.size(), 12u);
  EXPECT_EQ(std::memcmp(raw.data(), values, 12), 0);
  const Tensor copy = file.to_tensor("f");
  EXPECT_EQ(copy.dtype(), DType::kF32);
  EXPECT_EQ(copy.shape(), (Shape{3}));
  EXPECT_EQ(copy.span<float>()[1], -2.25f);
  const Tensor f32 = file.read_f32("f");
  EXPECT_EQ(f32.span<float>()[2], 1e-3f);
  EXPECT_EQ(std::to_integer<int>(file.bytes("b")[0]), 7);
  EXPECT_THROW(file.read_f32("b"), Error);
  EXPECT_THROW(file.info("missing"), Error);
}

// Half-precision decoding against the IEEE-754 formulas: (-1)^s · 2^(e-15) · (1 + m/1024), subnormals m · 2^-24.
TEST(SafetensorsFile, ConvertsHalfAndBfloatToFloat) {
  const uint16_t f16[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x3555};
  const uint16_t bf16[] = {0x3F80, 0xC049, 0x0001, 0x7F80, 0xFF7F};
  std::string data(reinterpret_cast<const char*>(f16), sizeof f16);
  data.append(reinterpret_cast<const char*>(bf16), sizeof bf16);
  const std::string header = R"({"h":{"dtype":"F16","shape":[10],"data_offsets":[0,20]},)"
                             R"("b":{"dtype":"BF16","shape":[5],"data_offsets":[20,30]}})";
  ScratchDir dir;
  testing::write_bytes(dir / "h.safetensors", testing::safetensors_image(header, data));
  const auto file = SafetensorsFile::open(dir / "h.safetensors");
  const Tensor h = file.read_f32("h");
  const auto hv = h.span<float>();
  EXPECT_EQ(hv[0], 1.0f);
  EXPECT_EQ(hv[1], -2.0f);
  EXPECT_EQ(hv[2], 65504.0f);
  EXPECT_EQ(hv[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(hv[4], std::ldexp(1023.0f, -24));
  EXPECT_EQ(hv[5], 0.0f);
  EXPECT_TRUE(std::signbit(hv[5]));
  EXPECT_EQ(hv[6], INFINITY);
  EXPECT_EQ(hv[7], -INFINITY);
  EXPECT_TRUE(std::isnan(hv[8]));
  EXPECT_EQ(hv[9], std::ldexp(1.0f + 0x155 / 1024.0f, 13 - 15));
  const Tensor b = file.read_f32("b");
  const auto bv = b.span<float>();
  EXPECT_EQ(bv[0], 1.0f);
  EXPECT_EQ(bv[1], -(1.0f + 0x49 / 128.0f) * 2.0f);  // exponent 128 → 2^1
  EXPECT_EQ(bv[2], std::ldexp(1.0f, -133));          // smallest bf16 subnormal
  EXPECT_EQ(bv[3], INFINITY);
  EXPECT_EQ(bv[4], -std::ldexp(255.0f / 128.0f, 127));  // most negative finite bf16
}

TEST(SafetensorsWriter, RoundTripsThroughTheReader) {
  SafetensorsWriter writer;
  const float a[4] = {1, 2, 3, 4};
  const uint8_t b[3] = {9, 8, 7};
  writer.add("z.weight", DType::kF32, {2, 2}, std::as_bytes(std::span(a)));
  writer.add("a.scales", DType::kU8, {3}, std::as_bytes(std::span(b)));
  writer.add("empty", DType::kBF16, {0, 5}, {});
  Tensor t = Tensor::zeros(DType::kI32, {2});
  t.span<int32_t>()[0] = -5;
  t.span<int32_t>()[1] = 1 << 30;
  writer.add("m.t", t);
  writer.set_metadata("format", "mlx");
  EXPECT_THROW(writer.add("z.weight", DType::kU8, {1}, std::as_bytes(std::span(b).first(1))), Error);
  EXPECT_THROW(writer.add("bad", DType::kF32, {2}, std::as_bytes(std::span(b))), Error);

  // Independent parse of the image: length field, 8-byte padded header, offsets in insertion order.
  const auto image = writer.serialize();
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | std::to_integer<uint8_t>(image[static_cast<size_t>(i)]);
  EXPECT_EQ(length % 8, 0u);
  const std::string text(reinterpret_cast<const char*>(image.data()) + 8, length);
  const auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json["__metadata__"]["format"], "mlx");
  EXPECT_EQ(json["z.weight"]["data_offsets"], nlohmann::json::array({0, 16}));
  EXPECT_EQ(json["a.scales"]["data_offsets"], nlohmann::json::array({16, 19}));
  EXPECT_EQ(json["empty"]["data_offsets"], nlohmann::json::array({19, 19}));
  EXPECT_EQ(json["m.t"]["data_offsets"], nlohmann::json::array({19, 27}));
  EXPECT_EQ(image.size(), 8 + length + 27);

  ScratchDir dir;
  writer.write(dir / "out.safetensors");
  EXPECT_FALSE(std::filesystem::exists(dir / "out.safetensors.partial"));
  const auto file = SafetensorsFile::open(dir / "out.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "mlx");
  EXPECT_EQ(file.info("z.weight").shape, (Shape{2, 2}));
  EXPECT_EQ(file.read_f32("z.weight").span<float>()[3], 4.0f);
  EXPECT_EQ(std::to_integer<int>(file.bytes("a.scales")[2]), 7);
  EXPECT_EQ(file.info("empty").bytes(), 0u);
  EXPECT_EQ(file.to_tensor("empty").elements(), 0);
  EXPECT_EQ(file.to_tensor("m.t").span<int32_t>()[1], 1 << 30);
}

TEST(SafetensorsFile, MissingFileIsNotFound) {
  ScratchDir dir;
  try {
    SafetensorsFile::open(dir / "nope.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_THAT(e.what(), HasSubstr("nope.safetensors"));
  }
}

}  // namespace
}  // namespace loom::weights
