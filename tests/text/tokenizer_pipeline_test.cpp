// Normalizers, pre-tokenizers, added tokens, decoders and post-processors on hand-written specs with answers derived
// by hand (and from the Unicode standard for normalisation).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/decoders.h"
#include "text/normalizers.h"
#include "text/pre_tokenizers.h"
#include "text/regex.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace loom::text {
namespace {

using Ids = std::vector<std::int32_t>;
using Words = std::vector<std::string>;
using nlohmann::json;

std::string normalize(const json& spec, const std::string& text) {
  return make_normalizer(spec, "test")->normalize(text);
}

Words pre_tokenize(const json& spec, const std::string& text) {
  std::vector<PreToken> words{{text, true}};
  make_pre_tokenizer(spec, "test")->pre_tokenize(words);
  Words out;
  for (const auto& w : words) out.push_back(w.text);
  return out;
}

std::string decode(const json& spec, std::vector<std::string> tokens) {
  make_decoder(spec, "test")->decode_chain(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

TEST(Normalizers, UnicodeForms) {
  EXPECT_EQ(normalize({{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");     // e + U+0301 -> é
  EXPECT_EQ(normalize({{"type", "NFC"}}, "\xE2\x84\xAB"), "\xC3\x85");  // Angstrom sign -> Å
  EXPECT_EQ(normalize({{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(normalize({{"type", "NFKC"}}, "\xEF\xAC\x81"), "fi");                  // ﬁ ligature
  EXPECT_EQ(normalize({{"type", "NFKD"}}, "\xEF\xBC\xA1\xC3\xA9"), "Ae\xCC\x81");  // fullwidth A, é
  EXPECT_EQ(normalize({{"type", "NFC"}}, std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(Normalizers, LowercaseReplacePrependStripSequence) {
  EXPECT_EQ(normalize({{"type", "Lowercase"}}, "ABC \xC3\x84 \xC4\xB0"), "abc \xC3\xA4 i\xCC\x87");  // İ -> i + U+0307
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}, "a b  c"),
            "a\xE2\x96\x81"
            "b\xE2\x96\x81\xE2\x96\x81"
            "c");
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "_"}}, "a \t b\n"), "a_b_");
  EXPECT_EQ(normalize({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, "x"), "\xE2\x96\x81x");
  EXPECT_EQ(normalize({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, ""), "");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \xE3\x80\x80x "), "x ");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, "\t x \n"), "x");
  const json sequence = {{"type", "Sequence"},
                         {"normalizers", {{{"type", "NFKC"}}, {{"type", "Lowercase"}}, {{"type", "StripAccents"}}}}};
  EXPECT_EQ(normalize(sequence, "\xEF\xAC\x81 \xC3\x89"), "fi \xC3\xA9");  // composed é has no Mn to strip
  const json decompose = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}}}};
  EXPECT_EQ(normalize(decompose, "\xC3\xA9t\xC3\xA9"), "ete");
}

TEST(PreTokenizers, SplitBehaviors) {
  const auto split = [](const char* behavior, bool invert = false) {
    return pre_tokenize({{"type", "Split"}, {"pattern", {{"String", ","}}}, {"behavior", behavior}, {"invert", invert}},
                        "a,b,,c");
  };
  EXPECT_EQ(split("Removed"), (Words{"a", "b", "c"}));
  EXPECT_EQ(split("Isolated"), (Words{"a", ",", "b", ",", ",", "c"}));
  EXPECT_EQ(split("MergedWithPrevious"), (Words{"a,", "b,", ",", "c"}));
  EXPECT_EQ(split("MergedWithNext"), (Words{"a", ",b", ",", ",c"}));
  EXPECT_EQ(split("Contiguous"), (Words{"a", ",", "b", ",,", "c"}));
  EXPECT_EQ(split("Removed", true), (Words{",", ",", ","}));
}

TEST(PreTokenizers, GptStyleRegexWithUnicodeClasses) {
  const json spec = {
      {"type", "Split"},
      {"pattern",
       {{"Regex", R"((?i:'s|'t)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
      {"behavior", "Isolated"}};
  EXPECT_EQ(pre_tokenize(spec, "It'S 42 \xD0\xBC\xD0\xB8\xD1\x80!!  x\n\n"),
            (Words{"It", "'S", " ", "4", "2", " \xD0\xBC\xD0\xB8\xD1\x80", "!!", " ", " x", "\n\n"}));
}

TEST(PreTokenizers, WhitespaceIsOnigurumaWhiteSpace) {
  // U+0085 is White_Space; U+180E (Mongolian vowel separator) stopped being one in Unicode 6.3.
  const Regex space("\\s", "test");
  EXPECT_EQ(space.find_all("\xC2\x85").size(), 1u);
  EXPECT_EQ(space.find_all("\xE1\xA0\x8E").size(), 0u);
  EXPECT_EQ(space.find_all("\xE3\x80\x80").size(), 1u);
  EXPECT_EQ(Regex("[^\\s]+", "test").find_all("ab\xC2\x85\xE1\xA0\x8E").size(), 2u);
  EXPECT_EQ(oniguruma_to_pcre2("[]\\s]"), std::string("[]") + std::string(oniguruma_to_pcre2("\\s")).substr(1));
}

TEST(PreTokenizers, MetaspaceDigitsWhitespacePunctuation) {
  const std::string m = "\xE2\x96\x81";
  EXPECT_EQ(pre_tokenize({{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}}, "hey  you"),
            (Words{m + "hey", m, m + "you"}));
  EXPECT_EQ(
      pre_tokenize({{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "never"}, {"split", false}}, "a b"),
      (Words{"a" + m + "b"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "a123b"), (Words{"a", "1", "2", "3", "b"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "a123b"), (Words{"a", "123", "b"}));
  EXPECT_EQ(pre_tokenize({{"type", "Whitespace"}}, "Hello, world!! x_1"), (Words{"Hello", ",", "world", "!!", "x_1"}));
  EXPECT_EQ(pre_tokenize({{"type", "WhitespaceSplit"}},
                         " a\tb\xE3\x80\x80"
                         "c "),
            (Words{"a", "b", "c"}));
  EXPECT_EQ(pre_tokenize({{"type", "Punctuation"}}, "a.b\xE3\x80\x82"), (Words{"a", ".", "b", "\xE3\x80\x82"}));
  EXPECT_EQ(pre_tokenize(
                {{"type", "Sequence"},
                 {"pretokenizers", {{{"type", "WhitespaceSplit"}}, {{"type", "Digits"}, {"individual_digits", true}}}}},
                "ab 12"),
            (Words{"ab", "1", "2"}));
  // ByteLevel without its regex maps bytes only: space -> U+0120.
  EXPECT_EQ(pre_tokenize({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, "a b"),
            (Words{"a\xC4\xA0"
                   "b"}));
}

TEST(Decoders, EachStep) {
  const std::string m = "\xE2\x96\x81";
  EXPECT_EQ(decode({{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}}, {m + "Hi", m + "there"}),
            "Hi there");
  EXPECT_EQ(decode({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}, {"  a", " b"}), " ab");
  EXPECT_EQ(decode({{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}}, {m + "a", "b" + m}), " ab ");
  EXPECT_EQ(decode({{"type", "ByteLevel"}}, {"a\xC4\xA0"
                                             "b",
                                             "\xC4\x8A", "<|x|>"}),
            "a b\n<|x|>");
  // A byte-level token sequence that stops inside a character decodes with U+FFFD.
  EXPECT_EQ(decode({{"type", "ByteLevel"}}, {"\xC3\xA4\xC2\xBD"}), "\xEF\xBF\xBD");
  EXPECT_EQ(decode({{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}},
                   {m + "a", "<0xE4>", "<0xBD>", "<0xA0>", m + "b"}),
            "a\xE4\xBD\xA0 b");
}

Tokenizer from_spec(const json& spec) {
  return Tokenizer::from_json(spec.dump());
}

json tiny_bpe() {
  json vocab = json::object();
  const std::string letters = "abcdefghijklmnopqrstuvwxyz <>_";
  for (std::size_t i = 0; i < letters.size(); ++i) vocab[std::string(1, letters[i])] = i;
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
}

TEST(AddedTokens, MatchedBeforeTheModelWithStripAndSingleWord) {
  json spec = tiny_bpe();
  spec["added_tokens"] = {
      {{"id", 100}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
      {{"id", 101}, {"content", "<ss>"}, {"special", true}, {"normalized", false}},
      {{"id", 102}, {"content", "L"}, {"special", false}, {"lstrip", true}, {"normalized", false}},
      {{"id", 103}, {"content", "R"}, {"special", false}, {"rstrip", true}, {"normalized", false}},
      {{"id", 104}, {"content", "W"}, {"special", false}, {"single_word", true}, {"normalized", false}},
      {{"id", 105}, {"content", "ab"}, {"special", false}, {"normalized", true}},
  };
  spec["normalizer"] = {{"type", "Lowercase"}};
  const Tokenizer tok = from_spec(spec);
  // Longest match wins: <ss> over <s>.
  EXPECT_EQ(tok.encode("x<ss>y<s>"), (Ids{23, 101, 24, 100}));
  // lstrip takes the spaces before, rstrip those after.
  EXPECT_EQ(tok.encode("x  L  y"), (Ids{23, 102, 26, 26, 24}));
  EXPECT_EQ(tok.encode("x  R  y"), (Ids{23, 26, 26, 103, 24}));
  // single_word: only when not inside a word.
  EXPECT_EQ(tok.encode("x W y"), (Ids{23, 26, 104, 26, 24}));
  EXPECT_EQ(tok.encode("xWy"), (Ids{23, 22, 24}));  // not matched; lowercased to "w" by the normalizer
  // A normalized token matches the normalised text: "AB" lowercases to "ab".
  EXPECT_EQ(tok.encode("xAB"), (Ids{23, 105}));
  // Decoding with skip_special_tokens drops special added tokens only.
  EXPECT_EQ(tok.decode(Ids{23, 100, 105}, true), "x ab");
  EXPECT_EQ(tok.token_to_id("<ss>"), 101);
  EXPECT_EQ(tok.id_to_token(104), "W");
}

TEST(PostProcessors, TemplateAndConfigFlags) {
  json spec = tiny_bpe();
  spec["added_tokens"] = {{{"id", 100}, {"content", "<b>"}, {"special", true}},
                          {{"id", 101}, {"content", "<e>"}, {"special", true}}};
  spec["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<b>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"SpecialToken", {{"id", "<e>"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<b>", {{"id", "<b>"}, {"ids", {100}}}}, {"<e>", {{"id", "<e>"}, {"ids", {101}}}}}}};
  EXPECT_EQ(from_spec(spec).encode("ab"), (Ids{100, 0, 1, 101}));
  EXPECT_EQ(from_spec(spec).encode("ab", false), (Ids{0, 1}));
  // A Gemma-class tokenizer_config rebuilds the template from add_bos_token / add_eos_token.
  const json config = {{"tokenizer_class", "GemmaTokenizer"},
                       {"bos_token", "<b>"},
                       {"eos_token", {{"content", "<e>"}}},
                       {"add_bos_token", false},
                       {"add_eos_token", true}};
  const Tokenizer configured = Tokenizer::from_json(spec.dump(), config.dump());
  EXPECT_EQ(configured.encode("ab"), (Ids{0, 1, 101}));
  EXPECT_EQ(configured.special_tokens().bos, 100);
  EXPECT_EQ(configured.special_tokens().eos, 101);
  // Other classes keep tokenizer.json's template.
  json other = config;
  other["tokenizer_class"] = "Qwen2Tokenizer";
  EXPECT_EQ(Tokenizer::from_json(spec.dump(), other.dump()).encode("ab"), (Ids{100, 0, 1, 101}));
}

TEST(Utf8, InvalidSequencesBecomeOneReplacementPerMaximalSubpart) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8::to_valid("a\xFF"
                           "b"),
            "a" + r + "b");
  EXPECT_EQ(utf8::to_valid("\xE2\x82"), r);                      // truncated 3-byte sequence: one
  EXPECT_EQ(utf8::to_valid("\xF0\x80\x80"), r + r + r);          // F0 80 is never valid: three
  EXPECT_EQ(utf8::to_valid("\xED\xA0\x80"), r + r + r);          // a surrogate
  EXPECT_EQ(utf8::to_valid("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(utf8::to_valid("\xC3\xA9\xF0\x9F\x98\x80"), "\xC3\xA9\xF0\x9F\x98\x80");
}

}  // namespace
}  // namespace loom::text
