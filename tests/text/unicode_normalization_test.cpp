// Unicode normalisation (NFC, NFD, NFKC, NFKD) against Python's unicodedata on strings that mix ASCII with
// characters that decompose, compose, reorder or have compatibility mappings
// (tests/golden/tokenizer/normalization.jsonl, from tools/reference/normalization_cases.py). loom cuts the text
// before each ASCII character and normalises the pieces; these cases put every kind of character next to ASCII.

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "text/unicode.h"

namespace loom::text {
namespace {

TEST(UnicodeNormalization, MatchesPythonUnicodedata) {
  std::ifstream in(std::string(LOOM_SOURCE_DIR) + "/tests/golden/tokenizer/normalization.jsonl", std::ios::binary);
  ASSERT_TRUE(in) << "missing tests/golden/tokenizer/normalization.jsonl";
  const std::pair<const char*, unicode::Form> forms[] = {{"NFC", unicode::Form::kNfc},
                                                         {"NFD", unicode::Form::kNfd},
                                                         {"NFKC", unicode::Form::kNfkc},
                                                         {"NFKD", unicode::Form::kNfkd}};
  int lines = 0, failures = 0;
  for (std::string line; std::getline(in, line) && failures < 10;) {
    if (line.empty()) continue;
    ++lines;
    const auto row = nlohmann::json::parse(line);
    const std::string text = row["text"].get<std::string>();
    for (const auto& [name, form] : forms) {
      const std::string got = unicode::normalize(text, form);
      if (got != row[name].get<std::string>()) {
        ++failures;
        ADD_FAILURE() << name << " of " << nlohmann::json(text).dump() << ": expected " << row[name].dump() << ", got "
                      << nlohmann::json(got).dump();
      }
    }
  }
  EXPECT_GE(lines, 400);
}

}  // namespace
}  // namespace loom::text
