// `loom bench` end to end through the binary: for several weight formats of the tiny synthetic model the JSON report
// is well formed, every figure is finite and positive, and the bytes it says one decode step reads equal the text
// model's weight bytes computed here from the preset's dimensions and the format's storage cost (an independent
// formula: codes + scales + biases per element, norms in the float dtype). No timing is asserted.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "support/loom_process.h"

namespace loom::engine {
namespace {

using test_support::run_loom;
using ::testing::HasSubstr;

// The tiny preset: vocab 1024, hidden 128, intermediate 256, 2 layers, 4 heads and 2 KV heads of 32.
constexpr double kVocab = 1024, kHidden = 128, kInter = 256, kLayers = 2, kQ = 4 * 32, kKv = 2 * 32, kHeadDim = 32;

double tiny_decode_bytes(double matrix_bytes_per_element, double float_bytes) {
  const double per_layer = kHidden * (kQ + 2 * kKv) + kQ * kHidden + 3 * kHidden * kInter;
  const double matrices = kVocab * kHidden + kLayers * per_layer;  // the tied embedding is the output projection
  const double norms = kLayers * (4 * kHidden + 2 * kHeadDim) + kHidden;
  return matrices * matrix_bytes_per_element + norms * float_bytes;
}

struct Case {
  const char* format;
  double matrix_bytes;  // per element: codes + scales (+ biases)
  double float_bytes;
};

class BenchCommand : public ::testing::TestWithParam<Case> {};

void expect_positive(const nlohmann::json& j, const char* key) {
  ASSERT_TRUE(j.contains(key)) << key;
  const double v = j[key].get<double>();
  EXPECT_TRUE(std::isfinite(v) && v > 0) << key << " = " << v;
}

TEST_P(BenchCommand, ReportsFiniteFiguresAndTheWeightBytesDecodeReads) {
  const Case& c = GetParam();
  const auto run = run_loom(std::string("bench --synthetic tiny --format ") + c.format +
                            " --prompt-tokens 12 --gen-tokens 4 --repeats 1 --json");
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j["format"], c.format);
  EXPECT_EQ(j["architecture"], "Gemma3ForConditionalGeneration");
  EXPECT_EQ(j["prompt_tokens"], 12);
  EXPECT_EQ(j["gen_tokens"], 4);
  EXPECT_DOUBLE_EQ(j["decode_bytes_per_token"].get<double>(), tiny_decode_bytes(c.matrix_bytes, c.float_bytes));
  // Stored bytes also hold the vision tower, which decode does not read.
  EXPECT_GT(j["weight_bytes"].get<double>(), j["decode_bytes_per_token"].get<double>());
  for (const char* key : {"prefill_ms", "prefill_tokens_per_s", "prefill_gflops", "decode_ms_per_token_median",
                          "decode_ms_per_token_mean", "decode_tokens_per_s", "decode_gb_per_s"}) {
    expect_positive(j["forward"], key);
  }
  EXPECT_EQ(j["forward"]["logits_finite"], true);
  for (const char* key : {"ttft_ms", "prefill_tokens_per_s", "decode_ms_per_token", "decode_tokens_per_s"}) {
    expect_positive(j["engine"], key);
  }
  for (const char* key : {"stream_read_gb_per_s", "stream_copy_gb_per_s", "sgemm_gflops"}) {
    expect_positive(j["machine"], key);
  }
  EXPECT_EQ(j["machine"]["sgemm_shape"], nlohmann::json({12, 128, 256}));
  expect_positive(j, "decode_bandwidth_ratio");
  expect_positive(j, "prefill_efficiency");
  expect_positive(j, "peak_rss_bytes");
  EXPECT_GE(j["machine"]["stream_buffer_bytes"].get<double>(), 256.0 * (1 << 20));
}

INSTANTIATE_TEST_SUITE_P(Formats, BenchCommand,
                         ::testing::Values(Case{"bf16", 2, 2}, Case{"f32", 4, 4},
                                           Case{"affine-4/g64", 0.5 + 4.0 / 64, 2},
                                           Case{"affine-3/g32", 3.0 / 8 + 4.0 / 32, 2},
                                           Case{"mxfp4", 0.5 + 1.0 / 32, 2}, Case{"mxfp8", 1 + 1.0 / 32, 2},
                                           Case{"nvfp4", 0.5 + 1.0 / 16, 2}),
                         [](const auto& info) {
                           std::string name = info.param.format;
                           for (char& ch : name) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return name;
                         });

TEST(BenchCommandImages, ImagesGoThroughTheVisionTowerIntoTheEnginePrompt) {
  const auto run = run_loom("bench --synthetic tiny --format bf16 --prompt-tokens 8 --gen-tokens 2 --images 2 --json");
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j["images"], 2);
  EXPECT_EQ(j["image_tokens"], 2 * (4 + 2));  // <boi>, 4 soft tokens, <eoi> per image
  expect_positive(j["engine"], "ttft_ms");
}

TEST(BenchCommandErrors, BadPresetFormatAndOptionsAreRefusedClearly) {
  auto run = run_loom("bench --synthetic gemma3-2b --format bf16");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("unknown synthetic model 'gemma3-2b'"));
  EXPECT_THAT(run.err, HasSubstr("gemma3-1b"));

  run = run_loom("bench --synthetic tiny --format int4");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("unknown weight format 'int4'"));

  run = run_loom("bench --synthetic tiny --format affine-7");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("affine-7"));

  run = run_loom("bench --format bf16");
  EXPECT_NE(run.status, 0);

  run = run_loom("bench --synthetic tiny --gen-tokens 0");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("--gen-tokens"));
}

}  // namespace
}  // namespace loom::engine
