// Jinja2's built-in tests (`x is defined`, `x is string`, ...).

#include <fmt/format.h>

#include <cmath>

#include "text/jinja/interpreter.h"
#include "text/jinja/python_text.h"

namespace loom::text::jinja {

static const char* const kTests[] = {"defined", "undefined", "none",        "string",   "number",      "integer",
                                     "float",   "mapping",   "iterable",    "sequence", "boolean",     "true",
                                     "false",   "eq",        "equalto",     "==",       "ne",          "!=",
                                     "odd",     "even",      "divisibleby", "in",       "lt",          "lessthan",
                                     "<",       "le",        "<=",          "gt",       "greaterthan", ">",
                                     "ge",      ">=",        "callable",    "sameas",   "lower",       "upper",
                                     "filter",  "test",      "escaped"};

bool Interpreter::has_test(const std::string& name) const {
  for (const char* t : kTests) {
    if (name == t) return true;
  }
  return false;
}

static const Value& operand(const CallArgs& args, const std::string& test) {
  if (args.positional.empty()) render_fail(fmt::format("test '{}' needs an argument", test));
  return args.positional[0];
}

static int64_t integer_for_parity(const Value& v) {
  if (v.is_undefined()) undefined_error(v);
  if (v.is_bool()) return v.as_bool();
  if (v.is_int()) return v.as_int();
  render_fail(fmt::format("unsupported operand type(s) for %: '{}' and 'int'", v.type_name()));
}

bool Interpreter::apply_test(const std::string& name, const Value& v, const CallArgs& args) {
  charge(1);
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "sequence") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, operand(args, name));
  if (name == "ne" || name == "!=") return !equals(v, operand(args, name));
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, operand(args, name));
  if (name == "gt" || name == "greaterthan" || name == ">") return less(operand(args, name), v);
  if (name == "le" || name == "<=") return less(v, operand(args, name)) || equals(v, operand(args, name));
  if (name == "ge" || name == ">=") return less(operand(args, name), v) || equals(v, operand(args, name));
  if (name == "in") return contains(operand(args, name), v);
  if (name == "sameas") {
    const Value& other = operand(args, name);
    // Python identity: singletons and the same container object; small ints are cached by CPython.
    if (v.kind() != other.kind()) return false;
    if (v.is_none() || v.is_bool() || v.is_int()) return equals(v, other);
    if (v.is_list() || v.is_string()) return false;
    return equals(v, other);
  }
  if ((name == "odd" || name == "even") && v.is_float()) {
    double m = std::fmod(v.as_float(), 2.0);
    if (m < 0) m += 2.0;
    return name == "odd" ? m == 1.0 : m == 0.0;
  }
  if (name == "odd") return (integer_for_parity(v) % 2) != 0;
  if (name == "even") return (integer_for_parity(v) % 2) == 0;
  if (name == "divisibleby") {
    const Value& d = operand(args, name);
    const int64_t divisor = integer_for_parity(d);
    if (divisor == 0) render_fail("integer division or modulo by zero");
    if (divisor == -1) return true;
    return integer_for_parity(v) % divisor == 0;
  }
  if (name == "lower" || name == "upper") {
    const std::string s = v.str();
    bool cased = false;
    for (char32_t c : decode_utf8(s)) cased = cased || py_is_cased(c);
    return cased && (name == "lower" ? py_lower(s) == s : py_upper(s) == s);
  }
  if (name == "filter") {
    static const char* const kFilters[] = {
        "default",    "d",          "tojson",     "length", "count",   "safe",  "string",   "trim",
        "upper",      "lower",      "capitalize", "title",  "replace", "join",  "first",    "last",
        "list",       "int",        "float",      "abs",    "items",   "map",   "select",   "reject",
        "selectattr", "rejectattr", "unique",     "sort",   "min",     "max",   "dictsort", "reverse",
        "indent",     "escape",     "e",          "format", "sum",     "round", "attr",     "wordcount"};
    const std::string filter = v.str();
    for (const char* f : kFilters) {
      if (filter == f) return true;
    }
    return false;
  }
  if (name == "test") return has_test(v.str());
  render_fail(fmt::format("no test named '{}'", name));
}

}  // namespace loom::text::jinja
