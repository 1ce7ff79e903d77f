// Prompt assembly end to end with the real tokenizers and templates: images in place inside their turns, the
// fallback for text-only templates, why splicing after BOS is wrong, limits and errors. Expected prompts are written
// out by hand from the processors' formats (docs/MODELS.md) and tokenized; the tokenizer itself is checked against
// Hugging Face in the text room.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "prompt/chat_request.h"
#include "test_util.h"

namespace loom::prompt {
namespace {

using testing::golden_media_options;
using testing::make_builder;
using Json = nlohmann::ordered_json;

Json image_part(const std::string& url) {
  return {{"type", "image_url"}, {"image_url", {{"url", url}}}};
}
Json text_part(const std::string& text) {
  return {{"type", "text"}, {"text", text}};
}
ChatRequest user_request(Json content) {
  return parse_chat_request({{"messages", {{{"role", "user"}, {"content", std::move(content)}}}}});
}

std::string repeat(const std::string& token, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += token;
  return out;
}

const std::string kPhoto = "images/rgba_121x89.png";

TEST(Builder, Gemma3ImageExpandedInPlaceInsideTheUserTurn) {
  const auto builder = make_builder(Family::kGemma3);
  const auto result = builder.build(user_request({text_part("Describe:"), image_part(kPhoto)}), golden_media_options());
  const std::string expected = "<bos><start_of_turn>user\nDescribe:\n\n<start_of_image>" +
                               repeat("<image_soft_token>", 256) +
                               "<end_of_image>\n\n<end_of_turn>\n<start_of_turn>model\n";
  EXPECT_EQ(result.text, expected);
  EXPECT_EQ(result.ids, builder.tokenizer().encode(expected, false));
  EXPECT_EQ(result.ids.front(), 2);
  ASSERT_EQ(result.spans.size(), 1u);
  const auto& span = result.spans[0];
  EXPECT_EQ(span.length, 256);
  EXPECT_EQ(result.ids[static_cast<size_t>(span.start - 1)], 255999);
  EXPECT_EQ(result.ids[static_cast<size_t>(span.start + span.length)], 256000);
  EXPECT_EQ(std::count(result.token_types.begin(), result.token_types.end(), 1), 256);
  ASSERT_EQ(result.images.size(), 1u);
  EXPECT_EQ(result.images[0].soft_tokens, 256);
  EXPECT_FALSE(result.used_fallback);
}

// The Gemma 3 template without its image line: a text-only template.
std::string gemma3_text_only_template() {
  auto config = testing::read_json(testing::source_path(testing::kGemma3Dir + "/tokenizer_config.json"));
  std::string source = config["chat_template"].get<std::string>();
  const std::string image_line = "{{ '<start_of_image>' }}";
  source.replace(source.find(image_line), image_line.size(), "");
  return source;
}

TEST(Builder, FallbackForTextOnlyTemplatesMatchesTheProcessorsPlacement) {
  // Reference: the real template with the image as the first part of the last user message, expanded in place.
  const Json messages_with_image = Json::array({
      Json{{"role", "user"}, {"content", "Hi"}},
      Json{{"role", "assistant"}, {"content", "Hello"}},
      Json{{"role", "user"}, {"content", Json::array({image_part(kPhoto), text_part("What is this?")})}},
  });
  const auto reference = make_builder(Family::kGemma3)
                             .build(parse_chat_request({{"messages", messages_with_image}}), golden_media_options());
  const auto text_only = make_builder(Family::kGemma3, gemma3_text_only_template());
  const auto ours = text_only.build(parse_chat_request({{"messages", messages_with_image}}), golden_media_options());
  EXPECT_TRUE(ours.used_fallback);
  EXPECT_EQ(ours.ids, reference.ids);
  EXPECT_EQ(ours.text, reference.text);
}

TEST(Builder, SplicingAfterBosPutsTheImageOutsideTheTurnAndChangesTheIds) {
  // What servers that splice images at token level do: the block right after BOS, before the user-turn opener.
  const auto builder = make_builder(Family::kGemma3, gemma3_text_only_template());
  const auto request = user_request({image_part(kPhoto), text_part("What is this?")});
  const auto ours = builder.build(request, golden_media_options());
  const std::string block = "\n\n<start_of_image>" + repeat("<image_soft_token>", 256) + "<end_of_image>\n\n";
  const std::string rendered = builder.render(request);
  ASSERT_TRUE(rendered.starts_with("<bos><start_of_turn>user\n"));
  const std::string spliced = "<bos>" + block + rendered.substr(5);
  const auto spliced_ids = builder.tokenizer().encode(spliced, false);
  EXPECT_NE(spliced_ids, ours.ids);
  // Ours: <bos> <start_of_turn> user \n ... then the image; spliced: the image before <start_of_turn>.
  const auto first_image = [](const std::vector<int32_t>& ids) {
    return std::find(ids.begin(), ids.end(), 262144) - ids.begin();
  };
  const auto first_turn = [](const std::vector<int32_t>& ids) {
    return std::find(ids.begin(), ids.end(), 105) - ids.begin();
  };
  EXPECT_LT(first_turn(ours.ids), first_image(ours.ids));
  EXPECT_GT(first_turn(spliced_ids), first_image(spliced_ids));
}

TEST(Builder, QwenImagesInDifferentTurnsStayInTheirTurns) {
  const auto builder = make_builder(Family::kQwen3VL);
  const Json messages = Json::array({
      Json{{"role", "user"}, {"content", Json::array({text_part("First:"), image_part(kPhoto)})}},
      Json{{"role", "assistant"}, {"content", "A photo."}},
      Json{{"role", "user"}, {"content", Json::array({image_part("images/rgb_17x400.png"), text_part("Second?")})}},
  });
  const auto result = builder.build(parse_chat_request({{"messages", messages}}), golden_media_options());
  ASSERT_EQ(result.spans.size(), 2u);
  const int32_t im_start = *builder.tokenizer().token_to_id("<|im_start|>");
  const auto user_ids = builder.tokenizer().encode("user", false);
  for (const auto& span : result.spans) {
    // The nearest turn opener before each image is a user turn.
    auto at = static_cast<size_t>(span.start);
    while (at > 0 && result.ids[at] != im_start) --at;
    ASSERT_EQ(result.ids[at], im_start);
    EXPECT_EQ(result.ids[at + 1], user_ids.at(0));
    EXPECT_EQ(result.ids[static_cast<size_t>(span.start - 1)], 151652);  // <|vision_start|>
    EXPECT_EQ(result.ids[static_cast<size_t>(span.start + span.length)], 151653);
  }
  EXPECT_LT(result.spans[0].start, result.spans[1].start);
  EXPECT_EQ(result.spans[0].image, 0);
  EXPECT_EQ(result.spans[1].image, 1);
  // 121×89 → smart_resize 224×320 → grid (1, 14, 20) → 70 tokens.
  EXPECT_EQ(result.spans[0].length, 70);
  EXPECT_EQ(result.images[0].grid_thw[1], 14);
  EXPECT_EQ(result.images[0].grid_thw[2], 20);
  // M-RoPE: the first image token sits at (s, s, s) with s its index; the text after it at s + max(7, 10).
  const size_t n = result.ids.size();
  const auto s = result.spans[0].start;
  ASSERT_EQ(result.mrope_positions.size(), 3 * n);
  for (size_t axis = 0; axis < 3; ++axis) EXPECT_EQ(result.mrope_positions[axis * n + static_cast<size_t>(s)], s);
  const auto after = static_cast<size_t>(s + 70);
  for (size_t axis = 0; axis < 3; ++axis) EXPECT_EQ(result.mrope_positions[axis * n + after], s + 10);
}

TEST(Builder, Gemma4BudgetPerRequest) {
  const auto builder = make_builder(Family::kGemma4);
  // 121×89 within 70 tokens: factor sqrt(630·256 / (121·89)); sides floor(side·factor/48)·48; tokens (h/16)(w/16)/9.
  const double factor = std::sqrt(630.0 * 256.0 / (121.0 * 89.0));
  const int h = static_cast<int>(std::floor(89 * factor / 48)) * 48;
  const int w = static_cast<int>(std::floor(121 * factor / 48)) * 48;
  const int64_t tokens = (h / 16) * (w / 16) / 9;
  auto request = user_request({image_part(kPhoto), text_part("Hi")});
  request.image_max_tokens = 70;
  const auto result = builder.build(request, golden_media_options());
  ASSERT_EQ(result.spans.size(), 1u);
  EXPECT_EQ(result.spans[0].length, tokens);
  const std::string expected = "<bos><|turn>user\n\n\n<|image>" + repeat("<|image|>", static_cast<int>(tokens)) +
                               "<image|>\n\nHi<turn|>\n<|turn>model\n";
  EXPECT_EQ(result.text, expected);
  request.image_max_tokens = 100;
  EXPECT_THROW(builder.build(request, golden_media_options()), Error);
}

TEST(Builder, Gemma4BudgetDefaultFromTheServerAndOverriddenPerRequest) {
  const auto builder = make_builder(Family::kGemma4);
  auto request = user_request({image_part(kPhoto), text_part("Hi")});
  auto options = golden_media_options();
  request.image_max_tokens = 70;
  const int64_t tokens_70 = builder.build(request, options).spans.at(0).length;
  request.image_max_tokens = 280;
  const int64_t tokens_280 = builder.build(request, options).spans.at(0).length;
  ASSERT_LT(tokens_70, tokens_280);
  // No budget in the request: the server's default (--image-max-tokens) applies; a request's own budget wins over it.
  request.image_max_tokens.reset();
  options.default_image_max_tokens = 70;
  EXPECT_EQ(builder.build(request, options).spans.at(0).length, tokens_70);
  request.image_max_tokens = 280;
  EXPECT_EQ(builder.build(request, options).spans.at(0).length, tokens_280);
}

template <typename F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorKind::kInternal, "no error");
}

TEST(Builder, Limits) {
  const auto builder = make_builder(Family::kQwen3VL);
  Json parts = Json::array();
  for (int i = 0; i < 17; ++i) parts.push_back(image_part(kPhoto));
  const auto many = error_of([&] { builder.build(user_request(parts), golden_media_options()); });
  EXPECT_EQ(many.kind(), ErrorKind::kInvalidRequest);
  EXPECT_NE(std::string(many.what()).find("17"), std::string::npos);

  auto options = golden_media_options();
  options.limits.context_length = 20;
  const auto request = user_request({image_part(kPhoto), text_part("Hi")});
  const auto too_long = error_of([&] { builder.build(request, options); });
  EXPECT_EQ(too_long.kind(), ErrorKind::kContextLength);
  const auto n = builder.build(request, golden_media_options()).ids.size();
  EXPECT_NE(std::string(too_long.what()).find(std::to_string(n)), std::string::npos);
  EXPECT_NE(std::string(too_long.what()).find("20"), std::string::npos);
}

TEST(Builder, BadImagesAreNamedByIndex) {
  const auto builder = make_builder(Family::kGemma3);
  const auto request = user_request({image_part(kPhoto), image_part("data:image/png;base64,iVBORw0KGgo=")});
  const auto error = error_of([&] { builder.build(request, golden_media_options()); });
  EXPECT_EQ(error.kind(), ErrorKind::kInvalidRequest);
  EXPECT_NE(std::string(error.what()).find("image 1"), std::string::npos) << error.what();
}

TEST(Builder, ImageTokensWrittenAsTextAreRefused) {
  const auto gemma3 = make_builder(Family::kGemma3);
  EXPECT_THROW(gemma3.build(user_request({text_part("<start_of_image>"), image_part(kPhoto)}), golden_media_options()),
               Error);
  EXPECT_THROW(
      gemma3.build(user_request({text_part("<image_soft_token>"), image_part(kPhoto)}), golden_media_options()), Error);
  const auto qwen = make_builder(Family::kQwen3VL);
  EXPECT_THROW(qwen.build(user_request({text_part("<|image_pad|>")}), golden_media_options()), Error);
}

TEST(Builder, TextOnlyModelsRefuseImages) {
  const auto builder = make_builder(Family::kTextOnly);
  const auto error = error_of([&] { builder.build(user_request({image_part(kPhoto)}), golden_media_options()); });
  EXPECT_EQ(error.kind(), ErrorKind::kUnsupported);
  const auto text = builder.build(user_request({text_part("Hi")}), golden_media_options());
  EXPECT_EQ(text.text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_TRUE(text.spans.empty());
}

}  // namespace
}  // namespace loom::prompt
