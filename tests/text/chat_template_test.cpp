// The chat templates of the conformance test against transformers' own rendering (render_jinja_template, the function
// apply_chat_template renders with, cross-checked against AutoTokenizer.apply_chat_template for the real Gemma 3 and
// Qwen3 tokenizers). tools/reference/chat_template_expected.py writes the fixtures; the test skips while they are
// absent. Where transformers raises, loom must raise too.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "text/jinja/template.h"

namespace loom::text::jinja {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

const fs::path kRoot = LOOM_SOURCE_DIR;
const fs::path kExpected = kRoot / "tests/golden/templates/transformers_expected";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string template_source(const std::string& path) {
  const std::string text = read_file(kRoot / path);
  if (path.ends_with(".json")) return Json::parse(text).at("chat_template");
  return text;
}

TEST(ChatTemplate, MatchesTransformersApplyChatTemplate) {
  if (!fs::exists(kExpected / "expected.json")) {
    GTEST_SKIP() << "tests/golden/templates/transformers_expected/ is absent: produce it with "
                    "tools/reference/chat_template_expected.py on a machine with transformers";
  }
  const Json entries = Json::parse(read_file(kExpected / "contexts.json"));
  const Json expected = Json::parse(read_file(kExpected / "expected.json"));
  const Json& cases = expected.at("cases");
  ASSERT_EQ(entries.size(), cases.size());
  ASSERT_GE(entries.size(), 500u);

  std::map<std::string, Template> parsed;
  std::map<std::string, int> rendered;
  int mismatches = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string path = entries[i].at("template");
    auto it = parsed.find(path);
    if (it == parsed.end()) it = parsed.emplace(path, Template::parse(template_source(path))).first;
    std::string output, error;
    try {
      output = it->second.render(entries[i].at("context"));
    } catch (const Error& e) {
      error = e.what();
    }
    const bool expect_ok = cases[i].at("ok");
    const bool same = error.empty() == expect_ok && (!expect_ok || output == cases[i].at("output").get<std::string>());
    if (error.empty()) ++rendered[path];
    if (!same && ++mismatches <= 5) {
      ADD_FAILURE() << "case " << i << ", template " << path << "\ncontext: " << entries[i].at("context").dump()
                    << "\ntransformers: "
                    << (expect_ok ? Json(cases[i].at("output")).dump() : cases[i].at("error").dump())
                    << "\nloom:         " << (error.empty() ? Json(output).dump() : error);
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << entries.size() << " cases (transformers "
                           << expected.value("transformers", std::string("?")) << ")";
  EXPECT_GE(parsed.size(), 10u);
  for (const auto& [path, count] : rendered) EXPECT_GE(count, 40) << path;
}

}  // namespace
}  // namespace loom::text::jinja
