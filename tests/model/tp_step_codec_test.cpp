// The tensor-parallel wire messages (model/tp_step_codec.h): a rich step (several sequences, block tables,
// bidirectional spans, M-RoPE positions, image rows) and every control message come back field for field; every
// truncation of a message, and each malformed field, is refused with a loom::Error naming the field.

#include "model/tp_step_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

namespace loom::model {
namespace {

using ::testing::HasSubstr;

backend::Batch rich_batch() {
  backend::Batch batch;
  batch.position_axes = 3;
  batch.token_ids = {5, 6, 7, 8, 9, 10, 11};
  for (int axis = 0; axis < 3; ++axis) {
    for (int i = 0; i < 7; ++i) batch.positions.push_back(axis * 100 + i * 3 - 2);
  }
  batch.sequences.push_back({.token_offset = 0,
                             .token_count = 5,
                             .kv_start = 0,
                             .block_table = {3, 1},
                             .bidirectional_spans = {{1, 3}, {3, 5}}});
  batch.sequences.push_back({.token_offset = 5, .token_count = 1, .kv_start = 40, .block_table = {0, 2, 4}});
  batch.sequences.push_back({.token_offset = 6, .token_count = 1, .kv_start = 0, .block_table = {7}});
  return batch;
}

Tensor rows(int64_t count, int64_t width, float base) {
  Tensor t = Tensor::zeros(DType::kF32, {count, width});
  for (int64_t i = 0; i < t.elements(); ++i) t.data_as<float>()[i] = base + 0.25f * static_cast<float>(i);
  return t;
}

std::vector<uint8_t> rich_step_message() {
  const backend::Batch batch = rich_batch();
  const std::vector<ImageRows> images{{1, rows(4, 3, -1.5f)}, {6, rows(1, 3, 7.0f)}};
  return encode_step({&batch, images, true}, {0xfeedbeefcafe1234ull, 64, 16});
}

TEST(TpStepCodec, ARichStepComesBackFieldForField) {
  const backend::Batch batch = rich_batch();
  const std::vector<ImageRows> images{{1, rows(4, 3, -1.5f)}, {6, rows(1, 3, 7.0f)}};
  const std::vector<uint8_t> message = encode_step({&batch, images, true}, {0xfeedbeefcafe1234ull, 64, 16});
  ASSERT_EQ(message_type(message), TpMessageType::kStep);
  const DecodedStep step = decode_step(message);
  EXPECT_EQ(step.cache, (CacheGeometry{0xfeedbeefcafe1234ull, 64, 16}));
  EXPECT_TRUE(step.all_logits);
  EXPECT_EQ(step.batch.position_axes, 3);
  EXPECT_EQ(step.batch.token_ids, batch.token_ids);
  EXPECT_EQ(step.batch.positions, batch.positions);
  ASSERT_EQ(step.batch.sequences.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto& got = step.batch.sequences[i];
    const auto& want = batch.sequences[i];
    EXPECT_EQ(got.token_offset, want.token_offset) << i;
    EXPECT_EQ(got.token_count, want.token_count) << i;
    EXPECT_EQ(got.kv_start, want.kv_start) << i;
    EXPECT_EQ(got.block_table, want.block_table) << i;
    EXPECT_EQ(got.bidirectional_spans, want.bidirectional_spans) << i;
  }
  EXPECT_NO_THROW(step.batch.validate(16));
  ASSERT_EQ(step.images.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(step.images[i].row_begin, images[i].row_begin);
    ASSERT_EQ(step.images[i].embeddings.shape(), images[i].embeddings.shape());
    EXPECT_EQ(step.images[i].embeddings.dtype(), DType::kF32);
    EXPECT_EQ(std::memcmp(step.images[i].embeddings.data(), images[i].embeddings.data(), images[i].embeddings.bytes()),
              0);
  }
  const StepInputs inputs = step.inputs();
  EXPECT_EQ(inputs.batch, &step.batch);
  EXPECT_EQ(inputs.images.size(), 2u);
  EXPECT_TRUE(inputs.all_logits);
}

TEST(TpStepCodec, ADecodeStepWithoutImagesOrSpans) {
  backend::Batch batch;
  batch.token_ids = {42};
  batch.positions = {17};
  batch.sequences.push_back({.token_offset = 0, .token_count = 1, .kv_start = 17, .block_table = {0, 1}});
  const DecodedStep step = decode_step(encode_step({&batch, {}, false}, {1, 4, 16}));
  EXPECT_FALSE(step.all_logits);
  EXPECT_EQ(step.batch.position_axes, 1);
  EXPECT_EQ(step.batch.token_ids, batch.token_ids);
  EXPECT_EQ(step.batch.positions, batch.positions);
  ASSERT_EQ(step.batch.sequences.size(), 1u);
  EXPECT_EQ(step.batch.sequences[0].kv_start, 17);
  EXPECT_TRUE(step.images.empty());
}

TEST(TpStepCodec, ControlMessagesComeBack) {
  const ModelFingerprint model{"Gemma3ForConditionalGeneration", 2, 64, 2};
  const TpHello hello = decode_hello(encode_hello({1, TpChannel::kData, model}));
  EXPECT_EQ(hello.rank, 1);
  EXPECT_EQ(hello.channel, TpChannel::kData);
  EXPECT_EQ(hello.model, model);
  EXPECT_EQ(model.to_string(), "Gemma3ForConditionalGeneration, 2 layers, hidden 64, 2 ranks");

  const std::vector<uint8_t> id{1, 2, 3, 0, 255};
  EXPECT_EQ(decode_welcome(encode_welcome(id)), id);
  EXPECT_TRUE(decode_welcome(encode_welcome({})).empty());

  const TpLoaded loaded = decode_loaded(encode_loaded({360, 2}));
  EXPECT_EQ(loaded.vocab_size, 360);
  EXPECT_EQ(loaded.kv_layers, 2);

  const TpErrorReply error = decode_error(encode_error(ErrorKind::kOverloaded, "out of KV blocks"));
  EXPECT_EQ(error.kind, ErrorKind::kOverloaded);
  EXPECT_EQ(error.message, "out of KV blocks");

  EXPECT_EQ(message_type(encode_done()), TpMessageType::kDone);
  EXPECT_EQ(message_type(encode_shutdown()), TpMessageType::kShutdown);
}

// Every proper prefix of a message is refused as truncated (or, for the empty one, as having no type).
TEST(TpStepCodec, EveryTruncationIsRefused) {
  const std::vector<uint8_t> step = rich_step_message();
  for (size_t size = 0; size < step.size(); ++size) {
    const std::span<const uint8_t> prefix(step.data(), size);
    try {
      (void)decode_step(prefix);
      ADD_FAILURE() << "a " << size << "-byte prefix of a " << step.size() << "-byte step decoded";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    }
  }
  const std::vector<uint8_t> hello = encode_hello({1, TpChannel::kControl, {"X", 1, 2, 2}});
  for (size_t size = 0; size < hello.size(); ++size) {
    EXPECT_THROW((void)decode_hello(std::span<const uint8_t>(hello.data(), size)), Error) << size;
  }
  try {
    (void)decode_step(std::span<const uint8_t>(step.data(), step.size() - 1));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("image at row 6"));
  }
}

void put_i64(std::vector<uint8_t>& message, size_t at, int64_t value) {
  std::memcpy(message.data() + at, &value, sizeof value);
}

std::string decode_error_of(const std::vector<uint8_t>& message) {
  try {
    (void)decode_step(message);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    return e.what();
  }
  return "decoded";
}

TEST(TpStepCodec, MalformedFieldsAreRefusedByName) {
  // Layout: type (1), cache key (8), blocks (8), block size (4), all_logits (1), axes (4), token count (8) …
  constexpr size_t kBlocks = 9, kAllLogits = 21, kAxes = 22, kTokenCount = 26;
  std::vector<uint8_t> m = rich_step_message();
  m[0] = static_cast<uint8_t>(TpMessageType::kDone);
  EXPECT_THAT(decode_error_of(m), HasSubstr("expected a step message"));

  m = rich_step_message();
  put_i64(m, kBlocks, 0);
  EXPECT_THAT(decode_error_of(m), HasSubstr("cache"));

  m = rich_step_message();
  m[kAllLogits] = 2;
  EXPECT_THAT(decode_error_of(m), HasSubstr("all_logits"));

  m = rich_step_message();
  m[kAxes] = 7;
  EXPECT_THAT(decode_error_of(m), HasSubstr("position_axes"));

  // A count larger than the message could hold is refused before anything is allocated.
  m = rich_step_message();
  put_i64(m, kTokenCount, int64_t{1} << 60);
  EXPECT_THAT(decode_error_of(m), HasSubstr("token_ids: count"));
  m = rich_step_message();
  put_i64(m, kTokenCount, -1);
  EXPECT_THAT(decode_error_of(m), HasSubstr("token_ids: count"));

  // Fewer tokens than positions say: the positions no longer fit 3 axes.
  m = rich_step_message();
  put_i64(m, kTokenCount, 6);
  EXPECT_THAT(decode_error_of(m), HasSubstr("positions"));

  m = rich_step_message();
  m.push_back(0);
  EXPECT_THAT(decode_error_of(m), HasSubstr("unexpected bytes"));

  EXPECT_THROW((void)message_type({}), Error);
  const std::vector<uint8_t> unknown{99};
  EXPECT_THROW((void)message_type(unknown), Error);

  std::vector<uint8_t> error = encode_error(ErrorKind::kInternal, "x");
  error[1] = 200;
  EXPECT_THROW((void)decode_error(error), Error);

  std::vector<uint8_t> hello = encode_hello({1, TpChannel::kControl, {"X", 1, 2, 2}});
  hello[1] = 'X';
  try {
    (void)decode_hello(hello);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a loom tensor-parallel worker"));
  }
}

TEST(TpStepCodec, ImageRowsMustBeHostF32Matrices) {
  backend::Batch batch;
  batch.token_ids = {1};
  batch.positions = {0};
  batch.sequences.push_back({.token_offset = 0, .token_count = 1, .kv_start = 0, .block_table = {0}});
  const std::vector<ImageRows> images{{0, Tensor::zeros(DType::kF32, {3})}};
  EXPECT_THROW((void)encode_step({&batch, images, false}, {1, 1, 16}), Error);
  EXPECT_THROW((void)encode_step({nullptr, {}, false}, {1, 1, 16}), Error);
}

}  // namespace
}  // namespace loom::model
