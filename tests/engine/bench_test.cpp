// `loom bench` end to end through the binary: for several weight formats of the tiny synthetic model the JSON report
// is well formed, every figure is finite and positive, and the bytes it says one decode step reads equal the text
// model's weight bytes computed here from the preset's dimensions and the format's storage cost (an independent
// formula: codes + scales + biases per element, norms in the float dtype). No timing is asserted.

#include "engine/bench.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/synthetic.h"
#include "support/loom_process.h"
#include "support/scratch_dir.h"

namespace loom::engine {
namespace {

using test_support::quoted;
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
  const auto run = run_loom(std::string("bench --synthetic tiny --device cpu --format ") + c.format +
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
  const auto run =
      run_loom("bench --synthetic tiny --device cpu --format bf16 --prompt-tokens 8 --gen-tokens 2 --images 2 --json");
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

TEST(BenchCommandDevice, CpuReportHasTheSweepAndMemoryFieldsWellFormed) {
  const auto run = run_loom(
      "bench --synthetic tiny --format bf16 --device cpu --prompt-tokens 12 --gen-tokens 3 --prefill-tokens 16,40 "
      "--repeats 1 --json");
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["device_name"], "");
  EXPECT_EQ(j["prefill_sweep"]["gemm"], "OpenBLAS sgemm");
  const auto& points = j["prefill_sweep"]["points"];
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0]["tokens"], 16);
  EXPECT_EQ(points[1]["tokens"], 40);
  for (const auto& point : points) {
    for (const char* key : {"ms", "tokens_per_s", "gemm_ideal_ms", "efficiency"}) expect_positive(point, key);
    EXPECT_DOUBLE_EQ(point["efficiency"].get<double>(),
                     point["gemm_ideal_ms"].get<double>() / point["ms"].get<double>());
    EXPECT_EQ(point["logits_finite"], true);
  }
  EXPECT_TRUE(j["roofline"].is_null());  // the device copy probe runs on a GPU only
  // The engine's cache is sized to the request on the CPU: (12 + 3 + 64) tokens in whole blocks of 16.
  EXPECT_EQ(j["memory"]["kv_cache_tokens"], 80);
  // 2 layers × 2 KV heads × 32 × (keys + values) × 4 bytes per token.
  EXPECT_EQ(j["memory"]["kv_cache_bytes"], 80 * 2 * 2 * 32 * 2 * 4);
  EXPECT_EQ(j["memory"]["peak_device_bytes"], 0);
}

TEST(BenchCommandDevice, Gemma4ImagesAre280SoftTokens) {
  const auto run = run_loom(
      "bench --synthetic tiny-gemma4 --format bf16 --device cpu --prompt-tokens 8 --gen-tokens 2 --images 1 --repeats "
      "1 --json");
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j["architecture"], "Gemma4ForConditionalGeneration");
  EXPECT_EQ(j["image_tokens"], 280 + 2);  // <boi>, 280 soft tokens, <eoi>
  EXPECT_EQ(j["forward"]["logits_finite"], true);
  expect_positive(j["engine"], "ttft_ms");
}

TEST(BenchCommandDevice, SaveWritesASnapshotThatInfoAndBenchRead) {
  const test_support::ScratchDir scratch;
  const auto dir = scratch / "tiny-bf16";
  auto run = run_loom("bench --synthetic tiny --format bf16 --seed 4 --save " + quoted(dir));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "config.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "model.safetensors"));
  run = run_loom("info --model " + quoted(dir));
  EXPECT_EQ(run.status, 0) << run.err;
  run = run_loom("bench --model " + quoted(dir) + " --device cpu --prompt-tokens 6 --gen-tokens 2 --repeats 1 --json");
  ASSERT_EQ(run.status, 0) << run.err;
  const auto j = nlohmann::json::parse(run.out);
  EXPECT_EQ(j["format"], "BF16");  // a snapshot on disk is named by its embedding dtype
  EXPECT_DOUBLE_EQ(j["decode_bytes_per_token"].get<double>(), tiny_decode_bytes(2, 2));
  // Into a folder that now holds a snapshot: refused.
  run = run_loom("bench --synthetic tiny --format bf16 --save " + quoted(dir));
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("not an empty folder"));
}

TEST(BenchCommandDevice, BadDeviceOptionsAreRefused) {
  auto run = run_loom("bench --synthetic tiny --device tpu");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("--device"));
  run = run_loom("bench --synthetic tiny --gpu-memory-fraction 1.5");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("--gpu-memory-fraction"));
  run = run_loom("bench --synthetic tiny --device cpu --prefill-tokens 0");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("--prefill-tokens"));
  run = run_loom("bench --synthetic tiny --device cpu --prefill-tokens 5000 --repeats 1");  // tiny's context: 4096
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("context"));
  run = run_loom("bench --save /nonexistent/x");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("--synthetic"));
  run = run_loom("run --model . --prompt hi --gpu-memory-fraction -0.1");
  EXPECT_NE(run.status, 0);
  EXPECT_THAT(run.err, HasSubstr("--gpu-memory-fraction"));
}

// The matmuls one prefill pass runs: 2·Σ m·n·k equals the FLOP formula the report uses, and the per-layer embedding
// table of Gemma 4 is a gather (one row per decode token), not a matmul.
TEST(BenchCensus, ForwardGemmsAndGatheredTablesFollowTheDimensions) {
  const weights::Snapshot tiny = model::synthetic_snapshot("tiny", model::parse_synthetic_format("bf16"));
  const WeightCensus census = weight_census(tiny);
  double flops = 0;
  for (const backend::GemmShape& g : forward_gemm_shapes(census, 100)) {
    flops += 2.0 * static_cast<double>(g.m * g.n * g.k * g.count);
  }
  const double per_layer = kHidden * (kQ + 2 * kKv) + kQ * kHidden + 3 * kHidden * kInter;
  EXPECT_DOUBLE_EQ(flops, 2.0 * 100 * kLayers * per_layer + 2.0 * kVocab * kHidden);
  EXPECT_EQ(census.output_rows, 1024);
  EXPECT_EQ(census.output_cols, 128);

  const weights::Snapshot g4 = model::synthetic_snapshot("tiny-gemma4", model::parse_synthetic_format("bf16"));
  const WeightCensus c4 = weight_census(g4);
  int64_t text_bytes = 0;
  for (const std::string& name : g4.tensor_names()) {
    if (name.starts_with("model.language_model.")) text_bytes += static_cast<int64_t>(g4.at(name).info->bytes());
  }
  // embed_tokens_per_layer: 1024 rows of 12 layers × 16, bf16; a decode token reads one row.
  const int64_t ple_table = 1024 * 12 * 16 * 2;
  EXPECT_EQ(c4.decode_bytes, text_bytes - ple_table + ple_table / 1024);
  // Its projection (12·16 × 128) is a layer matrix, the table itself is not.
  int64_t projection = 0;
  for (const backend::GemmShape& g : c4.layer_matrices) {
    EXPECT_NE(g.k, 12 * 16) << "the gathered table is no matmul (" << g.n << " × " << g.k << ")";
    if (g.n == 12 * 16 && g.k == 128) projection += g.count;
  }
  EXPECT_EQ(projection, 1);
}

}  // namespace
}  // namespace loom::engine
