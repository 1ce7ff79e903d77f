// `loom quantize` run as a process: the output of every mode passes `loom info` without problems and is described as
// the requested quantization; option errors and refusals exit non-zero with a message naming the problem.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "support/loom_process.h"
#include "test_files.h"

namespace loom::weights {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test_support::LoomRun;
using test_support::quoted;
using test_support::run_loom;
using ::testing::HasSubstr;
using testing::ScratchDir;

const fs::path kTinyGemma3 = testing::source_dir() / "tests/golden/snapshots/tiny_gemma3";
const fs::path kTinyGemma3Vlm = testing::source_dir() / "tests/golden/models/tiny_gemma3_vlm";

TEST(QuantizeCommand, EveryModePassesLoomInfo) {
  struct Case {
    std::string args;
    std::string mode;  // as `loom info` names it
    int bits;
    int group;
  };
  const Case cases[] = {{"--mode affine", "affine-4/g64", 4, 64},
                        {"--mode affine --bits 8 --group-size 32", "affine-8/g32", 8, 32},
                        {"--mode mxfp4", "mxfp4", 4, 32},
                        {"--mode mxfp8", "mxfp8", 8, 32},
                        {"--mode nvfp4", "nvfp4", 4, 16}};
  for (const fs::path& model : {kTinyGemma3, kTinyGemma3Vlm}) {
    // tiny_gemma3: embed + 2 layers × 7 Linears, down_proj (32 inputs) only below group 64.
    // tiny_gemma3_vlm: embed + 6 layers × 7 Linears, every input dimension a multiple of 64.
    const int layers = model == kTinyGemma3 ? 2 : 6;
    for (const Case& c : cases) {
      SCOPED_TRACE(model.filename().string() + " " + c.args);
      ScratchDir scratch;
      const LoomRun q =
          run_loom("quantize --model " + quoted(model) + " --out " + quoted(scratch / "q") + " " + c.args);
      ASSERT_EQ(q.status, 0) << q.err;
      const int expected = 1 + layers * (model == kTinyGemma3 && c.group == 64 ? 6 : 7);
      EXPECT_THAT(q.out, HasSubstr("quantized " + std::to_string(expected) + " tensors to " + c.mode));
      EXPECT_TRUE(q.err.empty()) << q.err;  // no progress bar when stderr is not a terminal

      const LoomRun info = run_loom("info --json --model " + quoted(scratch / "q"));
      ASSERT_EQ(info.status, 0) << info.out << info.err;
      const json r = json::parse(info.out);
      EXPECT_TRUE(r["problems"].empty()) << r["problems"].dump();
      EXPECT_EQ(r["quantization"]["source"], "mlx");
      EXPECT_EQ(r["quantization"]["mode"], c.mode);
      EXPECT_EQ(r["quantization"]["bits"], c.bits);
      EXPECT_EQ(r["quantization"]["group_size"], c.group);
      EXPECT_EQ(r["quantization"]["quantized_modules"], expected);
      // Same logical parameters as the source.
      const LoomRun source_info = run_loom("info --json --model " + quoted(model));
      EXPECT_EQ(r["parameters"], json::parse(source_info.out)["parameters"]);
    }
  }
}

TEST(QuantizeCommand, RefusesBadOptionsAndExistingOutput) {
  ScratchDir scratch;
  const std::string base = "quantize --model " + quoted(kTinyGemma3) + " --out " + quoted(scratch / "q");
  for (const auto& [args, message] :
       {std::pair{" --mode int4", "--mode 'int4' is not one of affine, mxfp4, mxfp8, nvfp4"},
        std::pair{" --mode mxfp4 --bits 8", "--bits 8 is not valid for mxfp4"},
        std::pair{" --mode affine --group-size 48", "--group-size 48 is not valid for affine"},
        std::pair{" --mode affine --bits 7", "--bits 7 is not valid for affine"},
        std::pair{" --mode nvfp4 --group-size 32", "--group-size 32 is not valid for nvfp4"}}) {
    const LoomRun run = run_loom(base + args);
    EXPECT_EQ(run.status, 1) << args;
    EXPECT_THAT(run.err, HasSubstr(message));
    EXPECT_FALSE(fs::exists(scratch / "q"));
  }
  EXPECT_NE(run_loom("quantize --model " + quoted(kTinyGemma3) + " --mode affine").status, 0);  // --out required

  ASSERT_EQ(run_loom(base + " --mode mxfp8").status, 0);
  const LoomRun again = run_loom(base + " --mode mxfp4");
  EXPECT_EQ(again.status, 1);
  EXPECT_THAT(again.err, HasSubstr("already exists and is not empty; pass --force to replace it"));
  const LoomRun forced = run_loom(base + " --mode mxfp4 --force");
  EXPECT_EQ(forced.status, 0) << forced.err;
  EXPECT_EQ(json::parse(run_loom("info --json --model " + quoted(scratch / "q")).out)["quantization"]["mode"], "mxfp4");

  const LoomRun twice =
      run_loom("quantize --model " + quoted(scratch / "q") + " --out " + quoted(scratch / "qq") + " --mode affine");
  EXPECT_EQ(twice.status, 1);
  EXPECT_THAT(twice.err, HasSubstr("already quantized (mxfp4)"));
}

}  // namespace
}  // namespace loom::weights
