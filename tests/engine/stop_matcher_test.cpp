// The streaming stop matcher against a brute-force reference: decode the whole text, find the earliest occurrence of
// any stop string, cut there. Random texts are fed in random splits.

#include "engine/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>

namespace loom::engine {
namespace {

struct Outcome {
  std::string text;
  bool stopped = false;
  bool operator==(const Outcome&) const = default;
};

Outcome brute_force(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = std::string::npos;
  for (const std::string& s : stops) {
    if (!s.empty()) best = std::min(best, text.find(s));
  }
  if (best == std::string::npos) return {text, false};
  return {text.substr(0, best), true};
}

// Feeds `text` in pieces of the given lengths; checks that what is output never has to be taken back.
Outcome stream(const std::string& text, const std::vector<size_t>& cuts, const std::vector<std::string>& stops) {
  StopMatcher matcher({}, stops);
  Outcome out;
  size_t at = 0;
  for (size_t len : cuts) {
    out.text += matcher.push(std::string_view(text).substr(at, len));
    at += len;
    if (matcher.stopped()) break;
  }
  if (!matcher.stopped()) out.text += matcher.flush();
  out.stopped = matcher.stopped();
  return out;
}

std::vector<size_t> random_cuts(std::mt19937& rng, size_t length) {
  std::vector<size_t> cuts;
  size_t left = length;
  while (left > 0) {
    const size_t n = std::min<size_t>(left, rng() % 4);  // includes empty deltas
    cuts.push_back(n);
    left -= n;
  }
  return cuts;
}

std::string random_word(std::mt19937& rng, size_t max_len, const std::string& alphabet) {
  std::string s;
  const size_t len = rng() % (max_len + 1);
  for (size_t i = 0; i < len; ++i) s += alphabet[rng() % alphabet.size()];
  return s;
}

TEST(StopMatcher, MatchesTheBruteForceReferenceOverRandomSplits) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 5000; ++trial) {
    std::vector<std::string> stops;
    const size_t n_stops = 1 + rng() % 3;
    for (size_t i = 0; i < n_stops; ++i) stops.push_back(random_word(rng, 4, "abc"));
    const std::string text = random_word(rng, 30, "abc");
    const Outcome expected = brute_force(text, stops);
    for (int split = 0; split < 3; ++split) {
      const std::vector<size_t> cuts = random_cuts(rng, text.size());
      ASSERT_EQ(stream(text, cuts, stops), expected)
          << "text '" << text << "' stops '" << stops[0] << "' trial " << trial;
    }
  }
}

TEST(StopMatcher, EarliestStartWinsOverAnEarlierCompletion) {
  // "bc" completes first, but "abcd" starts earlier and completes with the next delta.
  StopMatcher m({}, {"abcd", "bc"});
  EXPECT_EQ(m.push("xab"), "x");
  EXPECT_EQ(m.push("c"), "");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push("d tail"), "");
  ASSERT_TRUE(m.stopped());
  EXPECT_EQ(*m.matched(), "abcd");
  // When the longer one fails, the held text is cut at the shorter match.
  StopMatcher n({}, {"abcd", "bc"});
  EXPECT_EQ(n.push("xabc"), "x");
  EXPECT_EQ(n.push("e"), "a");
  ASSERT_TRUE(n.stopped());
  EXPECT_EQ(*n.matched(), "bc");
}

TEST(StopMatcher, HoldsBackOnlyPossibleStarts) {
  StopMatcher m({}, {"</end>"});
  EXPECT_EQ(m.push("hello <"), "hello ");
  EXPECT_EQ(m.push("/e"), "");
  EXPECT_EQ(m.push("x"), "</ex");
  EXPECT_EQ(m.push(" </en"), " ");
  EXPECT_EQ(m.flush(), "</en");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, FlushDecidesAMatchHeldBehindALongerCandidate) {
  StopMatcher m({}, {"ab", "abc"});
  EXPECT_EQ(m.push("xa"), "x");
  EXPECT_EQ(m.push("b"), "");  // "ab" matched at the same start as the pending "abc": stops now
  EXPECT_TRUE(m.stopped());
  StopMatcher n({}, {"b", "abc"});
  EXPECT_EQ(n.push("ab"), "");  // "b" matched at 1, but "abc" could still start at 0
  EXPECT_FALSE(n.stopped());
  EXPECT_EQ(n.flush(), "a");
  EXPECT_TRUE(n.stopped());
}

TEST(StopMatcher, MultiByteTextIsCutBetweenCharacters) {
  std::mt19937 rng(4);
  // é (C3 A9), 日 (E6 97 A5), 🙂 (F0 9F 99 82) mixed with ASCII, fed in whole characters as the detokenizer does.
  const std::vector<std::string> chars = {"a", "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x99\x82", " "};
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::string> pieces;
    std::string text;
    for (size_t i = 0, n = rng() % 20; i < n; ++i) {
      pieces.push_back(chars[rng() % chars.size()]);
      text += pieces.back();
    }
    std::vector<std::string> stops = {chars[rng() % 4] + chars[rng() % 4], chars[rng() % 4] + " " + chars[rng() % 4]};
    const Outcome expected = brute_force(text, stops);
    StopMatcher m({}, stops);
    Outcome got;
    for (const std::string& p : pieces) {
      const std::string out = m.push(p);
      for (unsigned char c : out.substr(0, 1)) EXPECT_NE(c & 0xC0, 0x80) << "delta starts inside a character";
      got.text += out;
      if (m.stopped()) break;
    }
    if (!m.stopped()) got.text += m.flush();
    got.stopped = m.stopped();
    ASSERT_EQ(got, expected) << "trial " << trial;
  }
}

TEST(StopMatcher, StopIdsAndEmptyStrings) {
  StopMatcher m({1, 106}, {""});
  EXPECT_TRUE(m.is_stop_id(106));
  EXPECT_FALSE(m.is_stop_id(2));
  EXPECT_EQ(m.push("text"), "text");
  EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace loom::engine
