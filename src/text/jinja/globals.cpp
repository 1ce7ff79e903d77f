// The global functions chat templates call: Jinja2's range, namespace and dict, and transformers' raise_exception
// and strftime_now.

#include <fmt/format.h>

#include <ctime>

#include "text/jinja/interpreter.h"

namespace loom::text::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // Jinja's sandbox refuses longer ranges

int64_t int_arg(const Value& v) {
  if (v.is_bool()) return v.as_bool();
  if (!v.is_int()) render_fail(fmt::format("'{}' object cannot be interpreted as an integer", v.type_name()));
  return v.as_int();
}

Dict dict_from_args(const CallArgs& args, std::string_view function) {
  if (args.positional.size() > 1) render_fail(fmt::format("{} expected at most 1 argument", function));
  Dict dict;
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      dict = source.as_dict();
    } else {
      for (const auto& pair : source.iterate()) {
        if (!pair.is_list() || pair.as_list().size() != 2)
          render_fail(fmt::format("{}: expected key/value pairs", function));
        dict.set(pair.as_list()[0], pair.as_list()[1]);
      }
    }
  }
  for (const auto& [k, v] : args.keyword) dict.set(Value(k), v);
  return dict;
}

}  // namespace

void install_globals(Scope& scope) {
  scope.vars["range"] = Value::callable("range", [](const CallArgs& args, Interpreter& interp) {
    args.check("range", 3, {});
    if (args.positional.empty()) render_fail("range expected at least 1 argument, got 0");
    int64_t start = 0;
    int64_t stop = 0;
    int64_t step = 1;
    if (args.positional.size() == 1) {
      stop = int_arg(args.positional[0]);
    } else {
      start = int_arg(args.positional[0]);
      stop = int_arg(args.positional[1]);
      if (args.positional.size() == 3) step = int_arg(args.positional[2]);
    }
    if (step == 0) render_fail("range() arg 3 must not be zero");
    // Length computed in floating point so that extreme bounds cannot overflow.
    const double span = (static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step);
    const double count = span > 0 ? std::ceil(span) : 0;
    if (count > kMaxRange)
      render_fail(fmt::format("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).", kMaxRange));
    interp.charge(static_cast<int64_t>(count));
    List out;
    for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) out.emplace_back(start + i * step);
    return Value(std::move(out));
  });
  scope.vars["namespace"] = Value::callable("namespace", [](const CallArgs& args, Interpreter&) {
    return Value::namespace_object(dict_from_args(args, "namespace"));
  });
  scope.vars["dict"] =
      Value::callable("dict", [](const CallArgs& args, Interpreter&) { return Value(dict_from_args(args, "dict")); });
  scope.vars["raise_exception"] = Value::callable("raise_exception", [](const CallArgs& args, Interpreter&) -> Value {
    render_fail("raise_exception: " + (args.positional.empty() ? std::string() : args.positional[0].str()));
  });
  scope.vars["strftime_now"] = Value::callable("strftime_now", [](const CallArgs& args, Interpreter&) {
    if (args.positional.size() != 1 || !args.positional[0].is_string())
      render_fail("strftime_now expects a format string");
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buffer[512];
    const size_t n = std::strftime(buffer, sizeof(buffer), args.positional[0].as_string().c_str(), &local);
    return Value(std::string(buffer, n));
  });
}

}  // namespace loom::text::jinja
