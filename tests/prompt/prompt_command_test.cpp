// `loom prompt` run as a process on the bundled demo model (a real Gemma 3 tokenizer, template and processor config):
// the JSON report places each image's 64 soft tokens inside its own user turn, the text report abbreviates them, and
// bad input (a missing request file, an image outside --media-dir) fails naming the problem.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/loom_process.h"
#include "support/scratch_dir.h"

namespace loom::prompt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test_support::quoted;
using test_support::run_loom;
using test_support::ScratchDir;
using ::testing::HasSubstr;

const fs::path kDemo = fs::path(LOOM_SOURCE_DIR) / "models/demo";
const fs::path kImages = kDemo / "testset";
constexpr int32_t kStartOfTurn = 4, kEndOfTurn = 5, kImageToken = 8;  // models/demo/tokenizer.json

// Two user turns, an image in each (the second after its text), an assistant turn between.
json two_turn_request() {
  const auto image = [](const char* name) {
    return json{{"type", "image_url"}, {"image_url", {{"url", (kImages / name).string()}}}};
  };
  return {{"messages",
           json::array({{{"role", "user"},
                         {"content", json::array({image("00.png"), {{"type", "text"}, {"text", "What is this?"}}})}},
                        {{"role", "assistant"}, {"content", "An orange circle."}},
                        {{"role", "user"},
                         {"content", json::array({{{"type", "text"}, {"text", "And this?"}}, image("01.png")})}}})}};
}

TEST(PromptCommand, JsonReportPlacesEachImageInsideItsUserTurn) {
  ScratchDir scratch;
  std::ofstream(scratch / "request.json") << two_turn_request().dump();
  const auto run = run_loom("prompt --json --model " + quoted(kDemo) + " --request " +
                            quoted(scratch / "request.json") + " --media-dir " + quoted(kImages));
  ASSERT_EQ(run.status, 0) << run.err;
  const json report = json::parse(run.out);
  const auto ids = report.at("prompt_token_ids").get<std::vector<int32_t>>();
  const auto& images = report.at("images");
  ASSERT_EQ(images.size(), 2u);
  for (size_t k = 0; k < images.size(); ++k) {
    SCOPED_TRACE(k);
    const auto start = images[k].at("start").get<int64_t>();
    const auto length = images[k].at("length").get<int64_t>();
    EXPECT_EQ(images[k].at("index").get<int>(), static_cast<int>(k));
    EXPECT_EQ(length, 64);  // mm_tokens_per_image of the demo config
    ASSERT_LE(start + length, static_cast<int64_t>(ids.size()));
    EXPECT_TRUE(
        std::all_of(ids.begin() + start, ids.begin() + start + length, [](int32_t id) { return id == kImageToken; }));
    // Inside a turn: the nearest turn marker before the span opens a turn, the nearest after it closes one.
    const auto before = std::find_if(std::make_reverse_iterator(ids.begin() + start), ids.rend(),
                                     [](int32_t id) { return id == kStartOfTurn || id == kEndOfTurn; });
    ASSERT_NE(before, ids.rend());
    EXPECT_EQ(*before, kStartOfTurn);
    const auto after = std::find_if(ids.begin() + start + length, ids.end(),
                                    [](int32_t id) { return id == kStartOfTurn || id == kEndOfTurn; });
    ASSERT_NE(after, ids.end());
    EXPECT_EQ(*after, kEndOfTurn);
  }
  // One image per user turn, in order: the second image comes after the assistant's turn.
  const auto turns_before = [&](int64_t position) {
    return std::count(ids.begin(), ids.begin() + position, kStartOfTurn);
  };
  EXPECT_EQ(turns_before(images[0].at("start").get<int64_t>()), 1);
  EXPECT_EQ(turns_before(images[1].at("start").get<int64_t>()), 3);
  EXPECT_THAT(report.at("prompt_text").get<std::string>(), HasSubstr("<start_of_turn>user\nAnd this?"));
}

TEST(PromptCommand, TextReportAbbreviatesSoftTokensAndListsSpans) {
  ScratchDir scratch;
  std::ofstream(scratch / "request.json") << two_turn_request().dump();
  const auto run = run_loom("prompt --model " + quoted(kDemo) + " --request " + quoted(scratch / "request.json") +
                            " --media-dir " + quoted(kImages));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_THAT(run.out, ::testing::Not(HasSubstr("<image_soft_token><image_soft_token><image_soft_token>")));
  EXPECT_THAT(run.out, HasSubstr("image 0: tokens ["));
  EXPECT_THAT(run.out, HasSubstr("image 1: tokens ["));
}

TEST(PromptCommand, BadInputNamesTheProblem) {
  ScratchDir scratch;
  const auto missing = run_loom("prompt --model " + quoted(kDemo) + " --request " + quoted(scratch / "none.json"));
  EXPECT_NE(missing.status, 0);
  EXPECT_THAT(missing.err, HasSubstr("none.json"));
  std::ofstream(scratch / "request.json") << two_turn_request().dump();
  // The images live outside this media folder: refused, naming the image.
  const auto outside = run_loom("prompt --model " + quoted(kDemo) + " --request " + quoted(scratch / "request.json") +
                                " --media-dir " + quoted(scratch.path()));
  EXPECT_NE(outside.status, 0);
  EXPECT_THAT(outside.err, HasSubstr("image 0"));
}

}  // namespace
}  // namespace loom::prompt
