// What the engine packs into each step: image embeddings at the right rows across chunk boundaries, bidirectional
// spans never split, M-RoPE positions, and recomputation after preemption. Outputs are checked against the
// cache-free reference of test_model.h, packing against the recorded forward() inputs.

#include <gtest/gtest.h>

#include <algorithm>
#include <future>

#include "engine/engine.h"
#include "test_model.h"

namespace loom::engine {
namespace {

using testing::kImageToken;
using testing::reference_generate;
using testing::reference_text;
using testing::TestModel;
using Ids = std::vector<int32_t>;

struct ImagePrompt {
  Request request;
  std::vector<double> keys;  // the reference's view: text ids and embedding values
};

// Text and images interleaved: `layout` lists runs, positive = that many text tokens, negative = an image of that many
// soft tokens. Image k gets pixel value `first_pixel + k`, hence embedding rows 100·(first_pixel + k) + r.
ImagePrompt image_prompt(const std::vector<int>& layout, float first_pixel, int64_t max_tokens) {
  ImagePrompt out;
  Request& r = out.request;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  int index = 0;
  for (int run : layout) {
    if (run > 0) {
      for (int i = 0; i < run; ++i) {
        const auto id = static_cast<int32_t>((r.prompt.size() * 11 + 3) % 60);
        r.prompt.push_back(id);
        out.keys.push_back(id);
      }
      continue;
    }
    ImageInput image;
    image.start = static_cast<int64_t>(r.prompt.size());
    image.length = -run;
    image.index = index;
    const float pixel = first_pixel + static_cast<float>(index);
    image.pixels.pixel_values = Tensor::zeros(DType::kF32, {1});
    image.pixels.pixel_values.data_as<float>()[0] = pixel;
    image.pixels.soft_tokens = -run;
    for (int i = 0; i < -run; ++i) {
      r.prompt.push_back(kImageToken);
      out.keys.push_back(100.0 * pixel + i);
    }
    r.images.push_back(std::move(image));
    ++index;
  }
  return out;
}

Ids expected_tokens(const ImagePrompt& p) {
  std::vector<int64_t> positions(p.keys.size());
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int64_t>(i);
  return reference_generate(p.keys, positions, p.request.max_tokens, [](int64_t i) { return i; });
}

// Checks every recorded step: image rows sit inside one slice and carry consecutive rows of one image; with
// `bidirectional`, every span enters at its first row and is listed whole in its slice (the scheduler lists only the
// request's true span, so a listed [first, first + rows) proves all of the span's rows came in this chunk).
void check_packing(const std::vector<testing::ForwardRecord>& records, bool bidirectional) {
  for (const auto& record : records) {
    for (const auto& rows : record.images) {
      const backend::SequenceSlice* slice = nullptr;
      for (const auto& s : record.slices) {
        if (rows.row_begin >= s.token_offset && rows.row_begin < s.token_offset + s.token_count) slice = &s;
      }
      ASSERT_NE(slice, nullptr);
      EXPECT_LE(rows.row_begin + rows.rows, slice->token_offset + slice->token_count) << "rows cross a slice";
      // The embedding value says which row of its image this is: 100·pixel + r.
      const int64_t first_index = slice->kv_start + (rows.row_begin - slice->token_offset);
      const auto r0 = static_cast<int64_t>(rows.first_column[0]) % 100;
      for (int64_t i = 0; i < rows.rows; ++i) {
        EXPECT_EQ(static_cast<int64_t>(rows.first_column[static_cast<size_t>(i)]) % 100, r0 + i);
      }
      if (!bidirectional) continue;
      EXPECT_EQ(r0, 0) << "a bidirectional span was entered mid-way at cache index " << first_index;
      const backend::TokenRange whole{first_index, first_index + rows.rows};
      EXPECT_NE(std::find(slice->bidirectional_spans.begin(), slice->bidirectional_spans.end(), whole),
                slice->bidirectional_spans.end())
          << "span at " << first_index << " is not whole in its chunk";
    }
  }
}

TEST(EnginePacking, BidirectionalSpansAreNeverSplitAndRowsLandRight) {
  auto model = std::make_unique<TestModel>(1, /*bidirectional_images=*/true);
  TestModel* seen = model.get();
  Engine engine(std::move(model), nullptr, {.kv_tokens = 2048, .step_tokens = 16});
  // The 20-token image is longer than the step budget: it must run whole, alone.
  const ImagePrompt a = image_prompt({3, -10, 2, -20, 4}, 2.0f, 12);
  const ImagePrompt b = image_prompt({1, -6, 9, -7}, 5.0f, 9);
  auto sa = engine.submit(a.request);
  auto sb = engine.submit(b.request);
  auto sc = engine.submit(image_prompt({40}, 0.0f, 7).request);
  EXPECT_EQ(sa->collect().tokens, expected_tokens(a));
  EXPECT_EQ(sb->collect().tokens, expected_tokens(b));
  EXPECT_EQ(sc->collect().tokens, reference_text(image_prompt({40}, 0.0f, 7).request.prompt, 7));
  EXPECT_EQ(seen->encode_calls(), 4);
  const auto records = seen->records();
  check_packing(records, true);
  bool overshoot = false;
  for (const auto& record : records) {
    for (const auto& s : record.slices) overshoot |= s.token_count >= 20;
  }
  EXPECT_TRUE(overshoot) << "the 20-row span should have run as one chunk";
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST(EnginePacking, CausalImageSpansMaySplitAcrossChunks) {
  auto model = std::make_unique<TestModel>(1, /*bidirectional_images=*/false);
  TestModel* seen = model.get();
  Engine engine(std::move(model), nullptr, {.kv_tokens = 2048, .step_tokens = 8});
  const ImagePrompt a = image_prompt({3, -10, 2, -20, 4}, 2.0f, 6);
  EXPECT_EQ(engine.submit(a.request)->collect().tokens, expected_tokens(a));
  const auto records = seen->records();
  check_packing(records, false);
  int mid_span_entries = 0;
  for (const auto& record : records) {
    for (const auto& rows : record.images) mid_span_entries += static_cast<int64_t>(rows.first_column[0]) % 100 != 0;
    for (const auto& s : record.slices) EXPECT_LE(s.token_count, 8);
  }
  EXPECT_GT(mid_span_entries, 0) << "with an 8-token budget the 20-token span must continue in a later chunk";
  EXPECT_EQ(seen->encode_calls(), 2);
}

TEST(EnginePacking, AnImageThatFailsToEncodeFailsOnlyItsRequest) {
  auto model = std::make_unique<TestModel>(1, true);
  Engine engine(std::move(model), nullptr, {.kv_tokens = 2048, .step_tokens = 16});
  const ImagePrompt bad = image_prompt({2, -4, 2, -3}, -1.0f, 5);  // image 0 has pixel −1: the encoder refuses it
  const ImagePrompt good = image_prompt({5, -6, 1}, 3.0f, 5);
  auto sbad = engine.submit(bad.request);
  auto sgood = engine.submit(good.request);
  const Completion cbad = sbad->collect();
  EXPECT_EQ(cbad.finish.reason, FinishReason::kError);
  EXPECT_EQ(cbad.finish.error_kind, ErrorKind::kInvalidRequest);
  EXPECT_EQ(cbad.finish.error, "unreadable image");
  EXPECT_EQ(sgood->collect().tokens, expected_tokens(good));
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST(EnginePacking, MropePositionsAndRopeDeltaReachTheModel) {
  Engine engine(std::make_unique<TestModel>(3), nullptr, {.kv_tokens = 1024, .step_tokens = 5});
  Request r;
  r.sampling.temperature = 0.0f;
  r.max_tokens = 10;
  const int64_t n = 12;
  for (int64_t i = 0; i < n; ++i) r.prompt.push_back(static_cast<int32_t>((i * 7 + 2) % 60));
  r.mrope_positions.resize(3 * n);
  for (int64_t i = 0; i < n; ++i) {
    r.mrope_positions[static_cast<size_t>(i)] = static_cast<int32_t>(i < 4 ? i : 4);              // t
    r.mrope_positions[static_cast<size_t>(n + i)] = static_cast<int32_t>(i < 4 ? i : i % 3);      // h
    r.mrope_positions[static_cast<size_t>(2 * n + i)] = static_cast<int32_t>(i < 4 ? i : i / 3);  // w
  }
  r.rope_delta = -5;
  std::vector<double> keys(r.prompt.begin(), r.prompt.end());
  std::vector<int64_t> positions;
  for (int64_t i = 0; i < n; ++i) {
    positions.push_back(r.mrope_positions[static_cast<size_t>(i)] + 2 * r.mrope_positions[static_cast<size_t>(n + i)] +
                        3 * r.mrope_positions[static_cast<size_t>(2 * n + i)]);
  }
  const Ids expected = reference_generate(keys, positions, 10, [](int64_t i) { return 6 * (i - 5); });
  EXPECT_EQ(engine.submit(r)->collect().tokens, expected);

  // Without explicit positions every axis is the token index.
  Request plain = r;
  plain.mrope_positions.clear();
  plain.rope_delta = 0;
  std::vector<int64_t> plain_positions;
  for (int64_t i = 0; i < n; ++i) plain_positions.push_back(6 * i);
  EXPECT_EQ(engine.submit(plain)->collect().tokens,
            reference_generate(keys, plain_positions, 10, [](int64_t i) { return 6 * i; }));

  Request wrong = r;
  wrong.mrope_positions.pop_back();
  EXPECT_THROW(engine.submit(wrong), Error);
}

TEST(EnginePacking, PreemptedSequencesRecomputeAndFinishCorrectly) {
  auto model = std::make_unique<TestModel>();
  TestModel* seen = model.get();
  std::promise<void> reached, release;
  std::shared_future<void> released = release.get_future().share();
  seen->on_forward = [&](int64_t call) {
    if (call == 1) {
      reached.set_value();
      released.wait();
    }
  };
  // 8 blocks of 16 tokens. Two sequences of up to 116 tokens each cannot both finish in the cache together.
  Engine engine(std::move(model), nullptr, {.kv_tokens = 128, .step_tokens = 64});
  Request blocker;
  blocker.prompt = {1};
  blocker.max_tokens = 1;
  auto sblock = engine.submit(blocker);
  reached.get_future().wait();  // the worker is inside step 1: both next requests are admitted together
  Request a, b;
  a.sampling.temperature = b.sampling.temperature = 0.0f;
  a.max_tokens = b.max_tokens = 100;
  for (int i = 0; i < 16; ++i) {
    a.prompt.push_back(static_cast<int32_t>(i * 3 % 60));
    b.prompt.push_back(static_cast<int32_t>((i * 5 + 1) % 60));
  }
  auto sa = engine.submit(a);
  auto sb = engine.submit(b);
  release.set_value();
  EXPECT_EQ(sblock->collect().finish.reason, FinishReason::kLength);
  const Completion ca = sa->collect(), cb = sb->collect();
  EXPECT_EQ(ca.tokens, reference_text(a.prompt, 100));
  EXPECT_EQ(cb.tokens, reference_text(b.prompt, 100));
  EXPECT_EQ(ca.finish.usage.completion_tokens, 100);
  EXPECT_EQ(cb.finish.usage.completion_tokens, 100);
  EXPECT_GE(engine.stats().preemptions, 1);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

// A family whose image rows are wider than its hidden state (Qwen3-VL: merger + DeepStack columns): the engine must
// accept encode_image's [soft_tokens, image_width] rows and slice split spans with that row stride.
TEST(EnginePacking, WideImageRowsAreSlicedWithTheirOwnWidth) {
  auto model = std::make_unique<TestModel>(1, /*bidirectional_images=*/false);
  model->mutable_info().image_embedding_width = 3 * model->info().hidden_size;
  TestModel* seen = model.get();
  Engine engine(std::move(model), nullptr, {.kv_tokens = 2048, .step_tokens = 8});
  const ImagePrompt a = image_prompt({3, -10, 2, -20, 4}, 2.0f, 6);
  EXPECT_EQ(engine.submit(a.request)->collect().tokens, expected_tokens(a));
  int mid_span_entries = 0;
  for (const auto& record : seen->records()) {
    for (const auto& rows : record.images) mid_span_entries += static_cast<int64_t>(rows.first_column[0]) % 100 != 0;
  }
  EXPECT_GT(mid_span_entries, 0);
}

}  // namespace
}  // namespace loom::engine
