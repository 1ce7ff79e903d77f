// The bundled demo model (models/demo/) through the `loom` binary, as a user runs it: on its committed held-out test
// set loom answers at least 95% correctly and gives transformers' greedy answers; the answer follows the image; an
// image in the first user turn is still seen when the question comes in a later turn; copies made by `loom quantize`
// in affine-4 and mxfp4 still answer at least 90% correctly.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/loom_process.h"
#include "support/scratch_dir.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test_support::quoted;
using test_support::run_loom;
using test_support::ScratchDir;

const fs::path kDemo = fs::path(LOOM_SOURCE_DIR) / "models/demo";
const fs::path kTestSet = kDemo / "testset";

struct DemoCase {
  std::string image;                // file name under testset/
  json messages;                    // the conversation up to the question, images as {"type": "image"}
  std::string answer;               // what the image shows (the data generator's truth)
  std::string transformers_answer;  // transformers' greedy answer with the same weights (float32 compute)
};

std::vector<DemoCase> load_cases() {
  std::ifstream file(kTestSet / "cases.jsonl");
  std::vector<DemoCase> cases;
  std::string line;
  while (std::getline(file, line)) {
    const json c = json::parse(line);
    cases.push_back({c.at("image"), c.at("messages"), c.at("answer"), c.at("transformers_answer")});
  }
  return cases;
}

// The conversation as an OpenAI chat request: each {"type": "image"} part becomes an image_url with the case's file.
json chat_request(const json& messages, const std::string& image) {
  json out = json::array();
  for (json message : messages) {
    if (message["content"].is_array()) {
      for (auto& part : message["content"]) {
        if (part["type"] == "image") {
          part = {{"type", "image_url"}, {"image_url", {{"url", (kTestSet / image).string()}}}};
        }
      }
    }
    out.push_back(message);
  }
  return {{"messages", out}, {"max_tokens", 32}, {"temperature", 0}};
}

// loom's greedy answer to one conversation, whitespace-trimmed as the reference answers are.
std::string answer(const fs::path& model, const json& messages, const std::string& image) {
  ScratchDir scratch;
  const fs::path request = scratch / "request.json";
  std::ofstream(request) << chat_request(messages, image).dump();
  const auto run = run_loom("run --model " + quoted(model) + " --request " + quoted(request) + " --media-dir " +
                            quoted(kTestSet) + " --output text");
  EXPECT_EQ(run.status, 0) << run.err;
  const auto begin = run.out.find_first_not_of(" \n");
  const auto end = run.out.find_last_not_of(" \n");
  return begin == std::string::npos ? std::string() : run.out.substr(begin, end - begin + 1);
}

struct Score {
  int correct = 0;
  int agrees = 0;  // equal to transformers' answer
  int total = 0;
};

Score score(const fs::path& model, const std::vector<DemoCase>& cases) {
  Score s;
  for (const auto& c : cases) {
    const std::string got = answer(model, c.messages, c.image);
    s.correct += got == c.answer;
    s.agrees += got == c.transformers_answer;
    ++s.total;
    if (got != c.transformers_answer) {
      ADD_FAILURE() << model.filename() << " " << c.image << ": loom \"" << got << "\", transformers \""
                    << c.transformers_answer << "\" (truth \"" << c.answer << "\")";
    }
  }
  return s;
}

TEST(DemoModel, TestSetHasEnoughCases) {
  const auto cases = load_cases();
  EXPECT_GE(cases.size(), 40u);
  int later_turn = 0;
  for (const auto& c : cases) later_turn += c.messages.size() > 1;
  EXPECT_GE(later_turn, 3) << "multi-turn cases (image in the first turn, question in the last)";
}

TEST(DemoModel, AnswersLikeTransformersOnTheHeldOutSet) {
  const auto cases = load_cases();
  const Score s = score(kDemo, cases);
  // Same weights, same greedy decoding: every answer equals transformers' (a flip would need a near-tie, reported
  // above as a failure with both answers).
  EXPECT_EQ(s.agrees, s.total);
  EXPECT_GE(s.correct * 100, s.total * 95) << s.correct << "/" << s.total << " correct";
}

TEST(DemoModel, SeesAnImageFromAnEarlierTurn) {
  int seen = 0;
  for (const auto& c : load_cases()) {
    if (c.messages.size() < 3) continue;  // user (image) → assistant → user (question)
    ASSERT_FALSE(c.messages.back()["content"].dump().find("\"image\"") != std::string::npos);
    EXPECT_EQ(answer(kDemo, c.messages, c.image), c.transformers_answer) << c.image;
    ++seen;
  }
  EXPECT_GE(seen, 3);
}

TEST(DemoModel, AnswerFollowsTheImage) {
  // One question, two images: the answers differ and each names what its own image shows. The test set's describe
  // answers give the truth for any describe question.
  const json question = json::array(
      {{{"role", "user"},
        {"content", json::array({{{"type", "image"}}, {{"type", "text"}, {"text", "Describe the image."}}})}}});
  std::vector<std::pair<std::string, std::string>> described;  // image, truth
  for (const auto& c : load_cases()) {
    const bool describes = c.answer.rfind("A ", 0) == 0 || c.answer.rfind("An ", 0) == 0;
    if (c.messages.size() == 1 && describes) described.emplace_back(c.image, c.answer);
  }
  ASSERT_GE(described.size(), 2u);
  std::vector<std::string> answers;
  for (size_t k = 0; k < 4 && k < described.size(); ++k) {
    answers.push_back(answer(kDemo, question, described[k].first));
    EXPECT_EQ(answers.back(), described[k].second) << described[k].first;
  }
  EXPECT_NE(answers[0], answers[1]);
}

TEST(DemoModel, QuantizedCopiesStillSee) {
  const auto cases = load_cases();
  for (const std::string mode : {"--mode affine --bits 4 --group-size 64", "--mode mxfp4"}) {
    ScratchDir scratch;
    const fs::path copy = scratch / "quantized";
    const auto quantize = run_loom("quantize --model " + quoted(kDemo) + " --out " + quoted(copy) + " " + mode);
    ASSERT_EQ(quantize.status, 0) << quantize.err;
    Score s;
    for (const auto& c : cases) {
      s.correct += answer(copy, c.messages, c.image) == c.answer;
      ++s.total;
    }
    EXPECT_GE(s.correct * 100, s.total * 90) << mode << ": " << s.correct << "/" << s.total << " correct";
  }
}

}  // namespace
}  // namespace loom
