// What the differential tests cannot check against Python: error positions, error kinds, the resource limits that
// stop hostile templates, and the C++ API (both JSON flavours).

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/jinja/template.h"

namespace loom::text::jinja {
namespace {

std::string render(std::string_view source, const RenderLimits& limits = {}) {
  return Template::parse(source).render(nlohmann::ordered_json::object(), limits);
}

// The message of the loom::Error that parsing or rendering `source` throws.
std::string error_of(std::string_view source, const RenderLimits& limits = {}) {
  try {
    render(source, limits);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidRequest);
    return e.what();
  }
  ADD_FAILURE() << "no error for " << source;
  return "";
}

TEST(JinjaRender, SyntaxErrorsNameLineAndColumn) {
  EXPECT_NE(error_of("line one\n{% if %}").find("line 2, column 7"), std::string::npos)
      << error_of("line one\n{% if %}");
  EXPECT_NE(error_of("ab\ncd {{ 1 + }}").find("line 2, column 11"), std::string::npos);
  EXPECT_NE(error_of("{% for x in y %}").find("unexpected end of template"), std::string::npos);
  EXPECT_NE(error_of("\n\n  {% frobnicate %}").find("line 3, column 6"), std::string::npos);
  EXPECT_NE(error_of("{{ 'open").find("line 1, column 4"), std::string::npos);
}

TEST(JinjaRender, RenderErrorsNameLineAndColumn) {
  const std::string raised = error_of("ok\n  {{ raise_exception('bad roles') }}");
  EXPECT_NE(raised.find("bad roles"), std::string::npos);
  EXPECT_NE(raised.find("line 2"), std::string::npos);
  const std::string undefined = error_of("{% set a = 1 %}\n{{ a + missing.x }}");
  EXPECT_NE(undefined.find("'missing' is undefined"), std::string::npos) << undefined;
  EXPECT_NE(undefined.find("line 2, column 8"), std::string::npos) << undefined;
}

TEST(JinjaRender, ContextFromEitherJsonFlavour) {
  const auto t = Template::parse("{% for k in d %}{{ k }}{% endfor %} {{ d | tojson }}");
  const auto ordered = nlohmann::ordered_json::parse(R"({"d": {"b": 1, "a": [true, null, 1.5]}})");
  EXPECT_EQ(t.render(ordered), R"(ba {"b": 1, "a": [true, null, 1.5]})");
  const auto sorted = nlohmann::json::parse(R"({"d": {"b": 1, "a": 2}})");
  EXPECT_EQ(t.render(sorted), R"(ab {"a": 2, "b": 1})");  // nlohmann::json itself keeps keys sorted
  EXPECT_THROW(t.render(nlohmann::json::array()), Error);
}

TEST(JinjaRender, LoopIterationLimit) {
  RenderLimits limits;
  limits.max_loop_iterations = 1000;
  EXPECT_EQ(render("{% for i in range(10) %}{% for j in range(10) %}.{% endfor %}{% endfor %}", limits).size(), 100u);
  EXPECT_NE(error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", limits)
                .find("loop iterations"),
            std::string::npos);
}

TEST(JinjaRender, OutputAndValueSizeLimits) {
  RenderLimits limits;
  limits.max_output_bytes = 1000;
  EXPECT_NE(error_of("{% for i in range(200) %}xxxxxxxx{% endfor %}", limits).find("output exceeds"),
            std::string::npos);
  EXPECT_NE(error_of("{% set s = 'x' * 5000 %}", limits).find("larger than"), std::string::npos);
  EXPECT_NE(error_of("{% set s = 'x' * 9223372036854775807 %}", limits).find("larger than"), std::string::npos);
  // Doubling a string in a loop stops at the limit instead of exhausting memory.
  EXPECT_NE(error_of("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                     limits)
                .find("larger than"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                     limits)
                .find("larger than"),
            std::string::npos);
}

TEST(JinjaRender, RecursionAndNestingLimits) {
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("nested deeper"),
            std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").find("nested too deeply"),
            std::string::npos);
  std::string deep_ifs;
  for (int i = 0; i < 1000; ++i) deep_ifs += "{% if true %}";
  EXPECT_NE(error_of(deep_ifs).find("nested too deeply"), std::string::npos);
  EXPECT_NE(error_of("{{ range(1000000) | length }}").find("Range too big"), std::string::npos);
}

TEST(JinjaRender, WorkLimitStopsQuadraticTemplates) {
  RenderLimits limits;
  limits.max_work = 2'000'000;
  const auto start = std::chrono::steady_clock::now();
  const std::string message = error_of(
      "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}{% endfor %}", limits);
  EXPECT_NE(message.find("work limit"), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(JinjaRender, SandboxRefusesMutation) {
  EXPECT_NE(error_of("{% set l = [] %}{{ l.append(1) }}").find("unsafe"), std::string::npos);
  EXPECT_NE(error_of("{% set d = {} %}{% set d.x = 1 %}").find("non-namespace"), std::string::npos);
  EXPECT_EQ(render("{% set ns = namespace(x=[]) %}{% set ns.x = ns.x + [1] %}{{ ns.x }}"), "[1]");
}

}  // namespace
}  // namespace loom::text::jinja
