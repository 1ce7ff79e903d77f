// Python semantics of the operators, attribute access and subscripts a template uses.

#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "text/jinja/interpreter.h"
#include "text/jinja/python_text.h"

namespace loom::text::jinja {

void undefined_error(const Value& value) {
  const std::string& hint = value.undefined_hint();
  render_fail(hint.empty() ? "undefined value" : hint);
}

static int64_t as_integer(const Value& v) {
  return v.is_bool() ? static_cast<int64_t>(v.as_bool()) : v.as_int();
}
static bool is_integral(const Value& v) {
  return v.is_int() || v.is_bool();
}

[[noreturn]] static void unsupported(const std::string& op, const Value& a, const Value& b) {
  render_fail(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name()));
}

static Value repeat(Interpreter& interp, const Value& sequence, int64_t times) {
  if (times <= 0) return sequence.is_string() ? Value("") : Value(List{}, sequence.is_tuple());
  if (sequence.is_string()) {
    const auto& s = sequence.as_string();
    if (!s.empty() && static_cast<uint64_t>(times) > interp.limits().max_output_bytes / s.size() + 1) {
      interp.check_size(interp.limits().max_output_bytes + 1);
    }
    interp.check_size(s.size() * static_cast<size_t>(times));
    interp.charge(static_cast<int64_t>(s.size() * static_cast<size_t>(times) / 16));
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += s;
    return Value(std::move(out));
  }
  const auto& items = sequence.as_list();
  if (!items.empty() && static_cast<uint64_t>(times) > interp.limits().max_output_bytes / items.size() + 1) {
    interp.check_size(interp.limits().max_output_bytes + 1);
  }
  interp.check_size(items.size() * static_cast<size_t>(times));
  interp.charge(static_cast<int64_t>(items.size() * static_cast<size_t>(times)));
  List out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value(std::move(out), sequence.is_tuple());
}

static double python_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

Value binary_op(Interpreter& interp, const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  const bool numbers = a.is_number() && b.is_number();
  const bool integers = is_integral(a) && is_integral(b);
  if (op == "+") {
    if (integers) {
      int64_t r;
      if (__builtin_add_overflow(as_integer(a), as_integer(b), &r)) render_fail("integer overflow");
      return Value(r);
    }
    if (numbers) return Value(a.to_double() + b.to_double());
    if (a.is_string() && b.is_string()) {
      interp.check_size(a.as_string().size() + b.as_string().size());
      interp.charge(static_cast<int64_t>((a.as_string().size() + b.as_string().size()) / 16));
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      interp.check_size(a.as_list().size() + b.as_list().size());
      interp.charge(static_cast<int64_t>(a.as_list().size() + b.as_list().size()));
      List out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value(std::move(out), a.is_tuple());
    }
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (integers) {
      int64_t r;
      if (__builtin_sub_overflow(as_integer(a), as_integer(b), &r)) render_fail("integer overflow");
      return Value(r);
    }
    if (numbers) return Value(a.to_double() - b.to_double());
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (integers) {
      int64_t r;
      if (__builtin_mul_overflow(as_integer(a), as_integer(b), &r)) render_fail("integer overflow");
      return Value(r);
    }
    if (numbers) return Value(a.to_double() * b.to_double());
    if ((a.is_string() || a.is_list()) && is_integral(b)) return repeat(interp, a, as_integer(b));
    if ((b.is_string() || b.is_list()) && is_integral(a)) return repeat(interp, b, as_integer(a));
    unsupported(op, a, b);
  }
  if (op == "%" && a.is_string()) return Value(percent_format(a.as_string(), b));
  if (!numbers) unsupported(op, a, b);
  if (op == "/") {
    if (b.to_double() == 0) render_fail("division by zero");
    return Value(a.to_double() / b.to_double());
  }
  if (op == "//" || op == "%") {
    if (b.to_double() == 0) render_fail("integer division or modulo by zero");
    if (integers) {
      const int64_t x = as_integer(a);
      const int64_t y = as_integer(b);
      if (x == INT64_MIN && y == -1) render_fail("integer overflow");
      int64_t q = x / y;
      int64_t r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return op == "//" ? Value(q) : Value(r);
    }
    const double x = a.to_double();
    const double y = b.to_double();
    if (op == "%") return Value(python_fmod(x, y));
    return Value(std::floor(x / y));
  }
  if (op == "**") {
    if (integers && as_integer(b) >= 0) {
      int64_t base = as_integer(a);
      int64_t exp = as_integer(b);
      int64_t result = 1;
      while (exp > 0) {
        if ((exp & 1) != 0 && __builtin_mul_overflow(result, base, &result)) render_fail("integer overflow");
        exp >>= 1;
        if (exp > 0 && __builtin_mul_overflow(base, base, &base)) render_fail("integer overflow");
      }
      return Value(result);
    }
    if (a.to_double() == 0 && b.to_double() < 0) render_fail("0.0 cannot be raised to a negative power");
    return Value(std::pow(a.to_double(), b.to_double()));
  }
  render_fail("unknown operator " + op);
}

Value negate(const Value& value) {
  if (value.is_undefined()) undefined_error(value);
  if (value.is_float()) return Value(-value.as_float());
  if (is_integral(value)) {
    const int64_t v = as_integer(value);
    if (v == INT64_MIN) render_fail("integer overflow");
    return Value(-v);
  }
  render_fail(fmt::format("bad operand type for unary -: '{}'", value.type_name()));
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        render_fail(fmt::format("'in <string>' requires string as left operand, not {}", item.type_name()));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& v : container.as_list()) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return container.as_dict().find(item) != nullptr;
    default:
      render_fail(fmt::format("argument of type '{}' is not iterable", container.type_name()));
  }
}

Value slice(const Value& object, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (object.is_undefined()) undefined_error(object);
  auto bound = [](const Value& v, bool& ok) -> std::optional<int64_t> {
    if (v.is_none()) return std::nullopt;
    if (!is_integral(v)) ok = false;
    return ok ? std::optional<int64_t>(as_integer(v)) : std::nullopt;
  };
  bool ok = object.is_string() || object.is_list();
  const auto start_o = bound(start_v, ok);
  const auto stop_o = bound(stop_v, ok);
  const auto step_o = bound(step_v, ok);
  if (!ok) return Value::undefined("object is not sliceable");
  const int64_t step = step_o.value_or(1);
  if (step == 0) render_fail("slice step cannot be zero");
  std::vector<char32_t> chars;
  if (object.is_string()) chars = decode_utf8(object.as_string());
  const int64_t n =
      object.is_string() ? static_cast<int64_t>(chars.size()) : static_cast<int64_t>(object.as_list().size());
  auto clamp = [&](std::optional<int64_t> v, int64_t fallback, int64_t low, int64_t high) {
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) x = std::max(x + n, low);
    return std::min(x, high);
  };
  const int64_t start = step > 0 ? clamp(start_o, 0, 0, n) : clamp(start_o, n - 1, -1, n - 1);
  const int64_t stop = step > 0 ? clamp(stop_o, n, 0, n) : clamp(stop_o, -1, -1, n - 1);
  std::vector<int64_t> indices;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) indices.push_back(i);
  if (object.is_string()) {
    std::string out;
    for (int64_t i : indices) append_utf8(out, chars[static_cast<size_t>(i)]);
    return Value(std::move(out));
  }
  List out;
  for (int64_t i : indices) out.push_back(object.as_list()[static_cast<size_t>(i)]);
  return Value(std::move(out), object.is_tuple());
}

std::string percent_format(const std::string& format, const Value& args) {
  List values = args.is_tuple() ? args.as_list() : List{args};
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    if (++i >= format.size()) render_fail("incomplete format");
    std::string spec;
    while (i < format.size() && std::string_view("-+ #0123456789.").find(format[i]) != std::string_view::npos) {
      spec += format[i++];
    }
    if (i >= format.size()) render_fail("incomplete format");
    const char conversion = format[i];
    if (conversion == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) render_fail("not enough arguments for format string");
    const Value& v = values[next++];
    switch (conversion) {
      case 's':
        if (!spec.empty()) render_fail("width and precision in %s formats are not supported");
        out += v.str();
        break;
      case 'r':
        out += v.repr();
        break;
      case 'd':
      case 'i':
        if (!v.is_number()) render_fail(fmt::format("%d format: a real number is required, not {}", v.type_name()));
        out += std::to_string(v.is_float() ? static_cast<int64_t>(v.as_float()) : as_integer(v));
        break;
      case 'f':
        if (!v.is_number()) render_fail("must be real number");
        out += fmt::format(fmt::runtime("{:" + spec + "f}"), v.to_double());
        break;
      default:
        render_fail(std::string("unsupported format character '") + conversion + "'");
    }
  }
  if (next < values.size() && args.is_tuple()) render_fail("not all arguments converted during string formatting");
  return out;
}

static bool is_dict_method(const std::string& name) {
  return name == "get" || name == "items" || name == "keys" || name == "values";
}
static bool is_unsafe_method(const Value& object, const std::string& name) {
  if (object.is_dict()) {
    return name == "pop" || name == "popitem" || name == "update" || name == "clear" || name == "setdefault" ||
           name == "copy" || name == "fromkeys";
  }
  if (object.is_list()) {
    return name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
           name == "clear" || name == "sort" || name == "reverse" || name == "copy" || name == "index" ||
           name == "count";
  }
  return false;
}

static Value dict_method(const Value& dict, const std::string& name) {
  return Value::callable(name, [dict, name](const CallArgs& args, Interpreter&) -> Value {
    if (name == "get") {
      args.check("get", 2, {});
      if (args.positional.empty()) render_fail("get expected at least 1 argument, got 0");
      const Value* found = dict.as_dict().find(args.positional[0]);
      if (found != nullptr) return *found;
      return args.positional.size() > 1 ? args.positional[1] : Value::none();
    }
    args.check(name, 0, {});
    List out;
    for (const auto& [k, v] : dict.as_dict().items()) {
      if (name == "keys") {
        out.push_back(k);
      } else if (name == "values") {
        out.push_back(v);
      } else {
        out.emplace_back(List{k, v}, true);
      }
    }
    return Value(std::move(out));
  });
}

Value Interpreter::get_attr(const Value& object, const std::string& name) {
  if (object.is_undefined()) undefined_error(object);
  if (object.is_dict() && is_dict_method(name)) return dict_method(object, name);
  if (is_unsafe_method(object, name)) {
    const std::string type = object.type_name();
    return Value::undefined(fmt::format("access to attribute '{}' of '{}' object is unsafe", name, type));
  }
  if (object.is_string()) {
    Value method = string_method(object, name);
    if (!method.is_undefined()) return method;
  }
  if (object.is_namespace()) {
    const Value* found = object.namespace_attributes().find(std::string_view(name));
    return found != nullptr ? *found : Value::undefined(fmt::format("Namespace has no attribute '{}'", name));
  }
  if (object.is_dict()) {
    const Value* found = object.as_dict().find(std::string_view(name));
    if (found != nullptr) return *found;
  }
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", object.type_name(), name));
}

Value Interpreter::get_item(const Value& object, const Value& key) {
  if (object.is_undefined()) undefined_error(object);
  if (object.is_dict()) {
    const Value* found = object.as_dict().find(key);
    if (found != nullptr) return *found;
  } else if ((object.is_list() || object.is_string()) && is_integral(key)) {
    int64_t index = as_integer(key);
    if (object.is_list()) {
      const auto n = static_cast<int64_t>(object.as_list().size());
      if (index < 0) index += n;
      if (index >= 0 && index < n) return object.as_list()[static_cast<size_t>(index)];
    } else {
      const auto chars = decode_utf8(object.as_string());
      const auto n = static_cast<int64_t>(chars.size());
      if (index < 0) index += n;
      if (index >= 0 && index < n) {
        std::string out;
        append_utf8(out, chars[static_cast<size_t>(index)]);
        return Value(std::move(out));
      }
    }
  }
  if (key.is_string()) {
    if (object.is_namespace() || object.is_dict()) {
      if (object.is_dict() && !is_dict_method(key.as_string()) && !is_unsafe_method(object, key.as_string())) {
        return Value::undefined(fmt::format("dict object has no element {}", key.repr()));
      }
    }
    return get_attr(object, key.as_string());
  }
  return Value::undefined(fmt::format("'{}' object has no element {}", object.type_name(), key.repr()));
}

}  // namespace loom::text::jinja
