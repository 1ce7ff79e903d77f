// The Unigram model. Two hand-written tokenizer.json files are compared with a brute-force reference
// (tools/reference/unigram_bruteforce.py enumerates every segmentation of each string), a realistic Unigram tokenizer
// built by Hugging Face `tokenizers` (tools/reference/unigram_expected.py) is compared on the multilingual corpus when
// its folder exists, and a few cases are worked out by hand.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/tokenizer.h"

namespace loom::text {
namespace {

using Ids = std::vector<std::int32_t>;
using nlohmann::json;

const std::string kTiny = std::string(LOOM_SOURCE_DIR) + "/tests/golden/tokenizer/unigram_tiny/";
const std::string kHf = std::string(LOOM_SOURCE_DIR) + "/tests/golden/tokenizer/unigram_hf/";

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "missing " << path;
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

Tokenizer unigram(json vocab, json extra = json::object()) {
  json model = {{"type", "Unigram"}, {"vocab", std::move(vocab)}};
  model.update(extra);
  return Tokenizer::from_json(json{{"model", model}}.dump(), {}, "test tokenizer.json");
}

class BruteForce : public ::testing::TestWithParam<std::string> {};

TEST_P(BruteForce, MatchesEverySegmentationEnumerated) {
  const Tokenizer tok = Tokenizer::load(kTiny + GetParam());
  const auto rows = read_jsonl(kTiny + GetParam() + "/expected.jsonl");
  ASSERT_GE(rows.size(), 300u);
  int failures = 0;
  for (std::size_t i = 0; i < rows.size() && failures < 10; ++i) {
    const std::string text = rows[i]["text"].get<std::string>();
    const Ids want = rows[i]["ids"].get<Ids>();
    const Ids ids = tok.encode(text);
    const std::string decoded = tok.decode(want);
    if (ids != want || decoded != rows[i]["decoded"].get<std::string>()) {
      ++failures;
      ADD_FAILURE() << GetParam() << " line " << i + 1 << ": " << rows[i].dump() << "\n got ids " << json(ids).dump()
                    << " decoded " << json(decoded).dump();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Unigram, BruteForce, ::testing::Values("byte_fallback", "plain"));

TEST(Unigram, HuggingFaceRealisticTokenizerOnTheCorpus) {
  if (!std::filesystem::exists(kHf + "tokenizer.json")) {
    GTEST_SKIP() << "tests/golden/tokenizer/unigram_hf/ is absent: produce it with "
                    "tools/reference/unigram_expected.py on a machine with the tokenizers package";
  }
  const Tokenizer tok = Tokenizer::load(kHf);
  const auto corpus = read_jsonl(std::string(LOOM_SOURCE_DIR) + "/tests/golden/tokenizer/corpus.jsonl");
  const auto expected = read_jsonl(kHf + "expected.jsonl");
  ASSERT_EQ(corpus.size(), expected.size());
  int failures = 0;
  for (std::size_t i = 0; i < corpus.size() && failures < 10; ++i) {
    const std::string text = corpus[i].get<std::string>();
    const auto& want = expected[i];
    const Ids ids = tok.encode(text, true);
    const bool ok = ids == want["ids"].get<Ids>() && tok.encode(text, false) == want["ids_no_special"].get<Ids>() &&
                    tok.decode(ids, false) == want["decoded"].get<std::string>() &&
                    tok.decode(ids, true) == want["decoded_skip_special"].get<std::string>();
    if (!ok) {
      ++failures;
      ADD_FAILURE() << "line " << i + 1 << ": " << corpus[i].dump() << "\n expected " << want.dump() << "\n got ids "
                    << json(ids).dump() << " decoded " << json(tok.decode(ids, false)).dump();
    }
  }
}

TEST(Unigram, HighestScoreWinsAndTiesKeepTheEarliestStart) {
  // "ab" (-2) beats a + b (-3); "abc": ab + c = -3 ties a + bc = -3, and the last piece starting earlier (bc) wins.
  const Tokenizer tok =
      unigram(json::array({{"<unk>", 0.0}, {"a", -1.0}, {"b", -2.0}, {"c", -1.0}, {"ab", -2.0}, {"bc", -2.0}}),
              {{"unk_id", 0}});
  EXPECT_EQ(tok.encode("ab"), (Ids{4}));
  EXPECT_EQ(tok.encode("abc"), (Ids{1, 5}));
}

TEST(Unigram, UnknownRunsFuseAndByteFallbackNeedsEveryByte) {
  json vocab = json::array({{"<unk>", 0.0}, {"a", -1.0}, {"<0xC3>", 0.0}, {"<0xA9>", 0.0}, {"<0x78>", 0.0}});
  // é (C3 A9) has both byte pieces; "éx" is one fused run spelled in bytes; "y" has no byte piece.
  const Tokenizer with_bytes = unigram(vocab, {{"unk_id", 0}, {"byte_fallback", true}});
  EXPECT_EQ(with_bytes.encode("a\xC3\xA9x"
                              "a"),
            (Ids{1, 2, 3, 4, 1}));
  EXPECT_EQ(with_bytes.encode("xya"), (Ids{0, 1}));
  const Tokenizer without = unigram(vocab, {{"unk_id", 0}});
  EXPECT_EQ(without.encode("a\xC3\xA9xa"), (Ids{1, 0, 1}));
}

TEST(Unigram, WithoutUnkIdUnknownTextIsAnError) {
  const Tokenizer tok = unigram(json::array({{"a", -1.0}, {"b", -1.0}}));
  EXPECT_EQ(tok.encode("abba"), (Ids{0, 1, 1, 0}));
  try {
    tok.encode("abz");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    EXPECT_NE(std::string(e.what()).find("unk_id"), std::string::npos) << e.what();
  }
}

TEST(Unigram, MalformedVocabulariesNameTheProblem) {
  const auto kind_of = [](const std::string& text) {
    try {
      Tokenizer::from_json(text);
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::kInternal;
  };
  EXPECT_EQ(kind_of(R"({"model": {"type": "Unigram", "vocab": {"a": 0}}})"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of(R"({"model": {"type": "Unigram", "vocab": [["a"]]}})"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of(R"({"model": {"type": "Unigram", "vocab": [["a", "x"]]}})"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of(R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]], "unk_id": 1}})"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of(R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]], "unk_id": 0}})"), ErrorKind::kInternal);
}

}  // namespace
}  // namespace loom::text
