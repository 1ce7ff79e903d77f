// BPE and WordPiece on hand-written tokenizer.json files whose answers are worked out by hand.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "text/tokenizer.h"

namespace loom::text {
namespace {

using Ids = std::vector<std::int32_t>;
using nlohmann::json;

Tokenizer from(const json& spec, const json& config = nullptr) {
  return Tokenizer::from_json(spec.dump(), config.is_null() ? std::string() : config.dump(), "test tokenizer.json");
}

json bpe(json vocab, json merges, json extra = json::object()) {
  json model = {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
  model.update(extra);
  return {{"model", model}};
}

TEST(Bpe, LowestRankMergesFirst) {
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  // "b c" outranks "a b": a|b|c -> a|bc, and no merge joins a with bc.
  EXPECT_EQ(from(bpe(vocab, {"b c", "a b", "ab c"})).encode("abc"), (Ids{0, 4}));
  // "a b" first: a|b|c -> ab|c -> abc. Pairs may also be written as arrays.
  EXPECT_EQ(from(bpe(vocab, json::array({{"a", "b"}, {"b", "c"}, {"ab", "c"}}))).encode("abc"), (Ids{5}));
}

TEST(Bpe, EqualRanksMergeLeftmostFirst) {
  const json vocab = {{"a", 0}, {"aa", 1}};
  // aaa: the leftmost pair merges, leaving aa|a.
  EXPECT_EQ(from(bpe(vocab, {"a a"})).encode("aaa"), (Ids{1, 0}));
  EXPECT_EQ(from(bpe(vocab, {"a a"})).encode("aaaa"), (Ids{1, 1}));
}

TEST(Bpe, ByteFallbackSpellsUnknownCharactersAsBytes) {
  json vocab = {{"<unk>", 0}, {"a", 1}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 2 + b;
  json spec = bpe(vocab, json::array(), {{"unk_token", "<unk>"}, {"byte_fallback", true}});
  spec["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}};
  const Tokenizer tok = from(spec);
  // 你 is E4 BD A0.
  EXPECT_EQ(tok.encode("a\xE4\xBD\xA0"), (Ids{1, 2 + 0xE4, 2 + 0xBD, 2 + 0xA0}));
  EXPECT_EQ(tok.decode(Ids{1, 2 + 0xE4, 2 + 0xBD, 2 + 0xA0}), "a\xE4\xBD\xA0");
  // Bytes that do not spell UTF-8 decode to one U+FFFD each.
  EXPECT_EQ(tok.decode(Ids{2 + 0xE4, 2 + 0xBD, 1}),
            "\xEF\xBF\xBD\xEF\xBF\xBD"
            "a");
}

TEST(Bpe, UnknownCharactersFuseWhenAsked) {
  const json vocab = {{"<unk>", 0}, {"a", 1}};
  EXPECT_EQ(from(bpe(vocab, json::array(), {{"unk_token", "<unk>"}})).encode("xya\xC3\xA9z"), (Ids{0, 0, 1, 0, 0}));
  EXPECT_EQ(from(bpe(vocab, json::array(), {{"unk_token", "<unk>"}, {"fuse_unk", true}})).encode("xya\xC3\xA9z"),
            (Ids{0, 1, 0}));
  // Without an unk token, unknown characters are dropped.
  EXPECT_EQ(from(bpe(vocab, json::array())).encode("xaz"), (Ids{1}));
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}};
  EXPECT_EQ(from(bpe(vocab, {"a b"})).encode("abc"), (Ids{3, 2}));
  EXPECT_EQ(from(bpe(vocab, {"a b"}, {{"ignore_merges", true}})).encode("abc"), (Ids{4}));
}

TEST(Bpe, ContinuingSubwordPrefixAndSuffix) {
  const json vocab = {{"a", 0}, {"##b", 1}, {"a##b", 9}, {"ab", 2}, {"##c</w>", 3}, {"abc</w>", 4}};
  // The right half keeps its ## in the vocabulary but the merged token does not: a + ##b -> ab.
  const Tokenizer tok =
      from(bpe(vocab, {"a ##b", "ab ##c</w>"}, {{"continuing_subword_prefix", "##"}, {"end_of_word_suffix", "</w>"}}));
  EXPECT_EQ(tok.encode("abc"), (Ids{4}));
}

TEST(Bpe, ByteLevelPipelineMapsSpacesAndNewlines) {
  // GPT-2's byte table: space is U+0120 (Ġ), newline U+010A (Ċ).
  const json vocab = {{"h", 0}, {"i", 1}, {"\xC4\xA0", 2}, {"\xC4\x8A", 3}, {"hi", 4}, {"\xC4\xA0hi", 5}};
  json spec = bpe(vocab, {"h i", "\xC4\xA0 hi"});
  spec["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  spec["decoder"] = {{"type", "ByteLevel"}};
  const Tokenizer tok = from(spec);
  EXPECT_EQ(tok.encode("hi hi\n"), (Ids{4, 5, 3}));
  EXPECT_EQ(tok.decode(Ids{4, 5, 3}), "hi hi\n");
  // add_prefix_space puts a space before a word that has none.
  spec["pre_tokenizer"]["add_prefix_space"] = true;
  EXPECT_EQ(from(spec).encode("hi"), (Ids{5}));
}

TEST(Bpe, LongRepetitiveWordsStayCorrect) {
  const json vocab = {{"a", 0}, {"aa", 1}, {"aaaa", 2}};
  const Tokenizer tok = from(bpe(vocab, {"a a", "aa aa"}));
  // 2^k + 1 a's: pairs merge left to right into aaaa blocks, leaving one a.
  const auto ids = tok.encode(std::string(100001, 'a'));
  ASSERT_EQ(ids.size(), 25001u);
  EXPECT_EQ(ids.back(), 0);
  EXPECT_EQ(ids.front(), 2);
}

TEST(WordPiece, GreedyLongestMatchWithContinuationPrefix) {
  json spec = {{"model",
                {{"type", "WordPiece"},
                 {"unk_token", "[UNK]"},
                 {"vocab", {{"[UNK]", 0}, {"un", 1}, {"##aff", 2}, {"##able", 3}, {"a", 4}, {"##ff", 5}}}}}};
  spec["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  spec["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
  const Tokenizer tok = from(spec);
  EXPECT_EQ(tok.encode("unaffable a unx"), (Ids{1, 2, 3, 4, 0}));
  EXPECT_EQ(tok.decode(Ids{1, 2, 3, 4}), "unaffable a");
}

TEST(Loader, MalformedFilesNameTheProblem) {
  const auto kind_of = [](const std::string& text) {
    try {
      Tokenizer::from_json(text);
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::kInternal;
  };
  EXPECT_EQ(kind_of("{"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of("[]"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})"), ErrorKind::kInvalidFile);
  EXPECT_EQ(kind_of(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}}})"), ErrorKind::kUnsupported);
  EXPECT_EQ(kind_of(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "normalizer": {"type": "Precompiled"}})"),
            ErrorKind::kUnsupported);
  EXPECT_EQ(kind_of(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer":
                      {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}})"),
            ErrorKind::kInvalidFile);
}

}  // namespace
}  // namespace loom::text
