#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/jinja/template.h"

namespace loom::text::jinja {
namespace {

std::string render(std::string_view source, const nlohmann::ordered_json& context = nlohmann::ordered_json::object()) {
  return Template::parse(source).render(context);
}

TEST(JinjaRender, Basics) {
  EXPECT_EQ(render("{{ 1.0 }} {{ 1e-5 }} {{ 1e16 }} {{ 0.1+0.2 }} {{ 3/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7%3 }}"),
            "1.0 1e-05 1e+16 0.30000000000000004 1.5 3 -4 2");
}

}  // namespace
}  // namespace loom::text::jinja
