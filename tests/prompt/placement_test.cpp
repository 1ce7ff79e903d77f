// The placement rule on strings: placeholders are found left to right and replaced in place; when a template renders
// none, images go right after the LAST user-turn opener (contiguous, request order), after BOS only when there is no
// opener. Expected strings are written out by hand from docs/MODELS.md's rule and the processors' formats.

#include "prompt/placement.h"

#include <gtest/gtest.h>

#include <string>

#include "prompt/family.h"

namespace loom::prompt {
namespace {

TEST(Placement, FindsEveryPlaceholderLeftToRight) {
  EXPECT_EQ(find_placeholders("a<P>b<P><P>", "<P>"), (std::vector<size_t>{1, 5, 8}));
  EXPECT_TRUE(find_placeholders("abc", "<P>").empty());
  EXPECT_TRUE(find_placeholders("", "<P>").empty());
  EXPECT_TRUE(find_placeholders("abc", "").empty());
}

TEST(Placement, FallbackGoesInsideTheUserTurn) {
  const auto& gemma4 = family_spec(Family::kGemma4);
  const std::string rendered = "<bos><|turn>user\nWhat is this?<turn|>\n<|turn>model\n";
  EXPECT_EQ(insert_images_fallback(rendered, gemma4, 1, "<bos>"),
            "<bos><|turn>user\n\n\n<|image|>\n\nWhat is this?<turn|>\n<|turn>model\n");
}

TEST(Placement, FallbackChoosesTheLastUserTurn) {
  const auto& gemma3 = family_spec(Family::kGemma3);
  const std::string rendered =
      "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
      "<start_of_turn>user\nAnd this?<end_of_turn>\n<start_of_turn>model\n";
  EXPECT_EQ(insert_images_fallback(rendered, gemma3, 1, "<bos>"),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
            "<start_of_turn>user\n<start_of_image>And this?<end_of_turn>\n<start_of_turn>model\n");
}

TEST(Placement, FallbackAfterBosOnlyWithoutAnOpener) {
  const auto& qwen = family_spec(Family::kQwen3VL);
  const std::string image = "<|vision_start|><|image_pad|><|vision_end|>";
  EXPECT_EQ(insert_images_fallback("<s>plain text", qwen, 1, "<s>"), "<s>" + image + "plain text");
  EXPECT_EQ(insert_images_fallback("plain text", qwen, 1, "<s>"), image + "plain text");
  EXPECT_EQ(insert_images_fallback("plain text", qwen, 1, ""), image + "plain text");
}

TEST(Placement, FallbackOnAnEmptyPrompt) {
  const auto& gemma3 = family_spec(Family::kGemma3);
  EXPECT_EQ(insert_images_fallback("", gemma3, 2, "<bos>"), "<start_of_image><start_of_image>");
  EXPECT_EQ(fallback_position("", "<start_of_turn>user\n", "<bos>"), 0u);
}

TEST(Placement, SeveralImagesAreContiguousInRequestOrder) {
  const auto& qwen = family_spec(Family::kQwen3VL);
  const std::string rendered = "<|im_start|>user\nCompare<|im_end|>\n<|im_start|>assistant\n";
  const std::string with = insert_images_fallback(rendered, qwen, 3, "");
  const std::string image = "<|vision_start|><|image_pad|><|vision_end|>";
  EXPECT_EQ(with, "<|im_start|>user\n" + image + image + image + "Compare<|im_end|>\n<|im_start|>assistant\n");
  // In-place expansion then gives the blocks in order: the i-th placeholder is the i-th image.
  const std::string expanded = expand_placeholders(with, qwen.placeholder, {"[A]", "[B]", "[C]"});
  EXPECT_EQ(expanded,
            "<|im_start|>user\n<|vision_start|>[A]<|vision_end|><|vision_start|>[B]<|vision_end|>"
            "<|vision_start|>[C]<|vision_end|>Compare<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Placement, ExpansionIsInPlaceInEveryTurn) {
  const std::string rendered = "U1 <P> text\nU2 <P>\nU3 none";
  EXPECT_EQ(expand_placeholders(rendered, "<P>", {"first", "second"}), "U1 first text\nU2 second\nU3 none");
}

TEST(Placement, FamilyBlocks) {
  EXPECT_EQ(image_block(family_spec(Family::kGemma3), 3, 0),
            "\n\n<start_of_image><image_soft_token><image_soft_token><image_soft_token><end_of_image>\n\n");
  EXPECT_EQ(image_block(family_spec(Family::kGemma4), 2, 0), "<|image><|image|><|image|><image|>");
  EXPECT_EQ(image_block(family_spec(Family::kQwen3VL), 2, 0), "<|image_pad|><|image_pad|>");
  const std::string one = "\n\n<start_of_image><image_soft_token><end_of_image>\n\n";
  EXPECT_EQ(image_block(family_spec(Family::kGemma3), 1, 2),
            "Here is the original image " + one + " and here are some crops to help you see better " + one + " " + one);
}

TEST(Placement, AbbreviatesRuns) {
  EXPECT_EQ(abbreviate_runs("a<t><t><t>b<t>c", "<t>"), "a<t>×3b<t>c");
  EXPECT_EQ(abbreviate_runs("none", "<t>"), "none");
  EXPECT_EQ(abbreviate_runs("<t><t>", ""), "<t><t>");
}

TEST(Family, DetectedFromConfig) {
  EXPECT_EQ(detect_family({{"model_type", "gemma3"}}), Family::kGemma3);
  EXPECT_EQ(detect_family({{"architectures", {"Gemma4ForConditionalGeneration"}}}), Family::kGemma4);
  EXPECT_EQ(detect_family({{"model_type", "qwen3_vl_moe"}}), Family::kQwen3VL);
  EXPECT_EQ(detect_family({{"model_type", "gemma3_text"}}), Family::kTextOnly);
  EXPECT_EQ(detect_family(nlohmann::json::array()), Family::kTextOnly);
}

}  // namespace
}  // namespace loom::prompt
