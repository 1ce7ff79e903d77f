// Python str methods a template may call on strings (`content.startswith('<')`, `'{}'.format(x)`, ...).

#include <fmt/format.h>

#include "text/jinja/interpreter.h"
#include "text/jinja/python_text.h"

namespace loom::text::jinja {
namespace {

std::string required_string(const CallArgs& args, size_t index, std::string_view method) {
  if (index >= args.positional.size()) render_fail(fmt::format("{}() missing an argument", method));
  const Value& v = args.positional[index];
  if (!v.is_string()) render_fail(fmt::format("{}() argument must be str, not {}", method, v.type_name()));
  return v.as_string();
}

// An optional string argument that may be None (Python's default for chars / sep).
bool optional_string(const CallArgs& args, size_t index, std::string_view name, std::string& out) {
  const Value* v = args.get(index, name);
  if (v == nullptr || v->is_none()) return false;
  if (!v->is_string()) render_fail(fmt::format("argument must be str or None, not {}", v->type_name()));
  out = v->as_string();
  return true;
}

int64_t optional_int(const CallArgs& args, size_t index, std::string_view name, int64_t fallback) {
  const Value* v = args.get(index, name);
  if (v == nullptr) return fallback;
  if (!v->is_int() && !v->is_bool()) render_fail(fmt::format("'{}' must be an integer", name));
  return v->is_bool() ? v->as_bool() : v->as_int();
}

bool matches_affix(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& a) {
    if (!a.is_string()) render_fail("startswith/endswith argument must be str or a tuple of str");
    const std::string& x = a.as_string();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_tuple()) {
    for (const auto& a : affix.as_list()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

Value string_list(std::vector<std::string> parts) {
  List out;
  out.reserve(parts.size());
  for (auto& p : parts) out.emplace_back(std::move(p));
  return Value(std::move(out));
}

// str.format with automatic ({}) or explicit ({0}, {name}) fields; format specs are not supported.
std::string str_format(const std::string& format, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}')
        ++i;
      else
        render_fail("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = format.find('}', i);
    if (close == std::string::npos) render_fail("Single '{' encountered in format string");
    const std::string field = format.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) render_fail("format specs in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      v = auto_index < args.positional.size() ? &args.positional[auto_index] : nullptr;
      ++auto_index;
    } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
      const size_t index = std::stoul(field);
      v = index < args.positional.size() ? &args.positional[index] : nullptr;
    } else {
      v = args.get(SIZE_MAX, field);
    }
    if (v == nullptr) render_fail(fmt::format("Replacement index {} out of range for positional args tuple", field));
    out += v->str();
    i = close;
  }
  return out;
}

}  // namespace

Value Interpreter::string_method(const Value& text, const std::string& name) {
  static const char* const kMethods[] = {"startswith", "endswith", "strip",   "lstrip",  "rstrip", "split",
                                         "rsplit",     "upper",    "lower",   "replace", "title",  "capitalize",
                                         "find",       "rfind",    "count",   "format",  "join",   "splitlines",
                                         "isdigit",    "isalpha",  "isspace", "islower", "isupper"};
  if (std::find(std::begin(kMethods), std::end(kMethods), name) == std::end(kMethods)) return Value();
  return Value::callable(name, [text, name](const CallArgs& args, Interpreter& interp) -> Value {
    const std::string& s = text.as_string();
    if (name == "startswith" || name == "endswith") {
      if (args.positional.empty()) render_fail(name + "() takes at least 1 argument");
      return Value(matches_affix(s, args.positional[0], name == "startswith"));
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      std::string chars;
      const bool has = optional_string(args, 0, "chars", chars);
      return Value(py_strip(s, has ? &chars : nullptr, name != "rstrip", name != "lstrip"));
    }
    if (name == "split" || name == "rsplit") {
      std::string sep;
      const bool has = optional_string(args, 0, "sep", sep);
      const int64_t maxsplit = optional_int(args, 1, "maxsplit", -1);
      auto parts =
          name == "split" ? py_split(s, has ? &sep : nullptr, maxsplit) : py_rsplit(s, has ? &sep : nullptr, maxsplit);
      interp.charge(static_cast<int64_t>(parts.size()));
      return string_list(std::move(parts));
    }
    if (name == "splitlines") return string_list(py_splitlines(s));
    if (name == "upper") return Value(py_upper(s));
    if (name == "lower") return Value(py_lower(s));
    if (name == "title") return Value(py_title(s));
    if (name == "capitalize") return Value(py_capitalize(s));
    if (name == "replace") {
      std::string out = py_replace(s, required_string(args, 0, name), required_string(args, 1, name),
                                   optional_int(args, 2, "count", -1));
      interp.check_size(out.size());
      return Value(std::move(out));
    }
    if (name == "find" || name == "rfind") {
      if (args.positional.size() > 1) render_fail("find() with start/end is not supported");
      return Value(py_find(s, required_string(args, 0, name), name == "rfind"));
    }
    if (name == "count") {
      if (args.positional.size() > 1) render_fail("count() with start/end is not supported");
      return Value(static_cast<int64_t>(py_count(s, required_string(args, 0, name))));
    }
    if (name == "format") {
      std::string out = str_format(s, args);
      interp.check_size(out.size());
      return Value(std::move(out));
    }
    if (name == "join") {
      if (args.positional.size() != 1) render_fail("join() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const auto& item : args.positional[0].iterate()) {
        if (!item.is_string())
          render_fail(fmt::format("sequence item: expected str instance, {} found", item.type_name()));
        if (!first) out += s;
        first = false;
        out += item.as_string();
        interp.check_size(out.size());
      }
      return Value(std::move(out));
    }
    const auto chars = decode_utf8(s);
    if (chars.empty()) return Value(false);
    if (name == "isdigit") return Value(std::all_of(chars.begin(), chars.end(), py_isdigit));
    if (name == "isalpha") return Value(std::all_of(chars.begin(), chars.end(), py_isalpha));
    if (name == "isspace") return Value(std::all_of(chars.begin(), chars.end(), py_isspace));
    const bool cased = std::any_of(chars.begin(), chars.end(), py_is_cased);
    if (name == "islower") return Value(cased && py_lower(s) == s);
    return Value(cased && py_upper(s) == s);  // isupper
  });
}

}  // namespace loom::text::jinja
