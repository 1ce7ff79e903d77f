// Jinja2's built-in filters that chat templates use, with transformers' tojson.

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "text/jinja/interpreter.h"
#include "text/jinja/python_text.h"

namespace loom::text::jinja {
namespace {

const Value* arg(const CallArgs& args, size_t index, std::string_view name) {
  return args.get(index, name);
}

bool flag(const CallArgs& args, size_t index, std::string_view name, bool fallback = false) {
  const Value* v = arg(args, index, name);
  return v != nullptr ? v->truthy() : fallback;
}

// Python's int(str): optional sign, digits with single underscores, surrounding whitespace.
std::optional<int64_t> parse_int(const std::string& text, int base) {
  const std::string s = py_strip(text, nullptr, true, true);
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && std::isalnum(static_cast<unsigned char>(s[i - 1])) &&
        std::isalnum(static_cast<unsigned char>(s[i + 1]))) {
      continue;
    }
    digits += s[i];
  }
  if (digits.empty()) return std::nullopt;
  size_t start = (digits[0] == '+' || digits[0] == '-') ? 1 : 0;
  if (start >= digits.size()) return std::nullopt;
  // A 0x / 0o / 0b prefix is accepted when it matches the base (or base 0 picks it).
  if (digits.size() > start + 2 && digits[start] == '0') {
    const char p = static_cast<char>(std::tolower(static_cast<unsigned char>(digits[start + 1])));
    const int prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefixed != 0 && (base == prefixed || base == 0)) {
      digits.erase(start, 2);
      base = prefixed;
    }
  }
  if (base == 0) base = 10;
  for (size_t i = start; i < digits.size(); ++i) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(digits[i])));
    const int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c >= 'a' && c <= 'z') ? c - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
  }
  errno = 0;
  const long long v = std::strtoll(digits.c_str(), nullptr, base);
  if (errno == ERANGE) return std::nullopt;
  return static_cast<int64_t>(v);
}

// Python's float(str) for the decimal forms and inf/nan.
std::optional<double> parse_float(const std::string& text) {
  const std::string s = py_lower(py_strip(text, nullptr, true, true));
  if (s.empty() || s.find('_') != std::string::npos) return std::nullopt;
  if (s == "inf" || s == "+inf" || s == "infinity" || s == "+infinity") return HUGE_VAL;
  if (s == "-inf" || s == "-infinity") return -HUGE_VAL;
  if (s == "nan" || s == "+nan" || s == "-nan") return std::nan("");
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'e' && c != '+' && c != '-')
      return std::nullopt;
  }
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

Value attribute_of(Interpreter& interp, const Value& item, const std::string& attribute) {
  Value v = item;
  size_t start = 0;
  while (start <= attribute.size()) {
    const size_t dot = attribute.find('.', start);
    const std::string part = attribute.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    v = numeric ? interp.get_item(v, Value(static_cast<int64_t>(std::stoll(part)))) : interp.get_item(v, Value(part));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

Value sort_key(const Value& v, bool case_sensitive) {
  return (!case_sensitive && v.is_string()) ? Value(py_lower(v.as_string())) : v;
}

List to_list(const Value& v) {
  if (v.is_undefined()) return {};
  return v.iterate();
}

Value select(Interpreter& interp, const Value& input, const CallArgs& args, bool by_attribute, bool keep) {
  const size_t first_test_arg = by_attribute ? 1 : 0;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty()) render_fail("missing parameter for attribute name");
    attribute = args.positional[0].str();
  }
  std::string test;
  CallArgs test_args;
  if (args.positional.size() > first_test_arg) {
    test = args.positional[first_test_arg].str();
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(first_test_arg) + 1,
                                args.positional.end());
    test_args.keyword = args.keyword;
  }
  List out;
  for (const auto& item : to_list(input)) {
    const Value subject = by_attribute ? attribute_of(interp, item, attribute) : item;
    const bool passed = test.empty() ? subject.truthy() : interp.apply_test(test, subject, test_args);
    if (passed == keep) out.push_back(item);
  }
  return Value(std::move(out));
}

std::string indent(const std::string& text, const Value* width, bool first, bool blank) {
  std::string indention = "    ";
  if (width != nullptr) {
    indention =
        width->is_string()
            ? width->as_string()
            : std::string(static_cast<size_t>(std::max<int64_t>(0, width->is_int() ? width->as_int() : 4)), ' ');
  }
  const auto lines = py_splitlines(text + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += '\n';
      if (blank || !lines[i].empty()) out += indention;
    }
    out += lines[i];
  }
  if (first) out = indention + out;
  return out;
}

}  // namespace

Value Interpreter::apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
  charge(1 + static_cast<int64_t>(input.is_list() ? input.as_list().size() : 0));
  if (name == "default" || name == "d") {
    const Value* fallback = arg(args, 0, "default_value");
    if (input.is_undefined() || (flag(args, 1, "boolean") && !input.truthy())) return fallback ? *fallback : Value("");
    return input;
  }
  if (name == "tojson") {
    args.check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions options;
    options.ensure_ascii = flag(args, 0, "ensure_ascii");
    const Value* indent_v = arg(args, 1, "indent");
    if (indent_v != nullptr && !indent_v->is_none()) {
      options.pretty = true;
      options.item_separator = ",";
      if (indent_v->is_string()) {
        options.indent = indent_v->as_string();
      } else if (indent_v->is_number() && !indent_v->is_float()) {
        const int64_t n = indent_v->is_bool() ? indent_v->as_bool() : indent_v->as_int();
        options.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(n, 0, 64)), ' ');
      } else {
        render_fail("tojson: indent must be an integer or a string");
      }
    }
    const Value* separators = arg(args, 2, "separators");
    if (separators != nullptr && !separators->is_none()) {
      if (!separators->is_list() || separators->as_list().size() != 2) render_fail("tojson: separators must be a pair");
      options.item_separator = separators->as_list()[0].str();
      options.key_separator = separators->as_list()[1].str();
    }
    options.sort_keys = flag(args, 3, "sort_keys");
    std::string json = to_json(input, options);
    check_size(json.size());
    return Value(std::move(json));
  }
  if (name == "length" || name == "count") return Value(static_cast<int64_t>(input.length()));
  if (name == "safe" || name == "string") return input.is_string() ? input : Value(input.str());
  if (name == "trim") {
    const Value* chars = arg(args, 0, "chars");
    const std::string chars_s = chars != nullptr && !chars->is_none() ? chars->str() : "";
    return Value(py_strip(input.str(), chars != nullptr && !chars->is_none() ? &chars_s : nullptr, true, true));
  }
  if (name == "upper") return Value(py_upper(input.str()));
  if (name == "lower") return Value(py_lower(input.str()));
  if (name == "capitalize") return Value(py_capitalize(input.str()));
  if (name == "title") {
    // Jinja capitalises after whitespace and the characters - ( { [ <, lowering the rest of each word.
    std::string out;
    bool word_start = true;
    for (char32_t c : decode_utf8(input.str())) {
      const bool separator = py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
      if (separator) {
        append_utf8(out, c);
      } else {
        std::string ch;
        append_utf8(ch, c);
        out += word_start ? py_upper(ch) : py_lower(ch);
      }
      word_start = separator;
    }
    return Value(std::move(out));
  }
  if (name == "replace") {
    const Value* old_v = arg(args, 0, "old");
    const Value* new_v = arg(args, 1, "new");
    const Value* count = arg(args, 2, "count");
    if (old_v == nullptr || new_v == nullptr) render_fail("replace() missing required arguments");
    std::string out = py_replace(input.str(), old_v->str(), new_v->str(),
                                 count != nullptr && !count->is_none() ? count->as_int() : -1);
    check_size(out.size());
    return Value(std::move(out));
  }
  if (name == "join") {
    const Value* separator = arg(args, 0, "d");
    const Value* attribute = arg(args, 1, "attribute");
    const std::string sep = separator != nullptr ? separator->str() : "";
    std::string out;
    bool first = true;
    for (const auto& item : to_list(input)) {
      if (!first) out += sep;
      first = false;
      out += attribute != nullptr && !attribute->is_none() ? attribute_of(*this, item, attribute->str()).str()
                                                           : item.str();
      check_size(out.size());
    }
    return Value(std::move(out));
  }
  if (name == "first" || name == "last") {
    if (name == "last" && !(input.is_list() || input.is_string() || input.is_dict())) {
      if (input.is_undefined()) return Value::undefined("no last item");
      render_fail(fmt::format("'{}' object is not reversible", input.type_name()));
    }
    List items = to_list(input);
    if (items.empty()) return Value::undefined(fmt::format("no {} item, sequence was empty", name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value(to_list(input));
  if (name == "int") {
    const Value* fallback = arg(args, 0, "default");
    const Value* base_v = arg(args, 1, "base");
    const Value fallback_value = fallback != nullptr ? *fallback : Value(0);
    if (input.is_int()) return input;
    if (input.is_bool()) return Value(static_cast<int64_t>(input.as_bool()));
    if (input.is_float()) {
      if (!std::isfinite(input.as_float()) || std::fabs(input.as_float()) >= 9.2e18) return fallback_value;
      return Value(static_cast<int64_t>(input.as_float()));
    }
    if (input.is_string()) {
      if (auto v = parse_int(input.as_string(), base_v != nullptr ? static_cast<int>(base_v->as_int()) : 10))
        return Value(*v);
      if (auto f = parse_float(input.as_string()); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18) {
        return Value(static_cast<int64_t>(*f));
      }
    }
    return fallback_value;
  }
  if (name == "float") {
    const Value* fallback = arg(args, 0, "default");
    if (input.is_number()) return Value(input.to_double());
    if (input.is_string()) {
      if (auto f = parse_float(input.as_string())) return Value(*f);
    }
    return fallback != nullptr ? *fallback : Value(0.0);
  }
  if (name == "abs") {
    if (input.is_float()) return Value(std::fabs(input.as_float()));
    if (input.is_int() || input.is_bool())
      return input.is_bool() || input.as_int() >= 0 ? binary_op(*this, "+", input, Value(0)) : negate(input);
    render_fail(fmt::format("bad operand type for abs(): '{}'", input.type_name()));
  }
  if (name == "items") {
    if (input.is_undefined()) return Value(List{});
    if (!input.is_dict()) render_fail("Can only get item pairs from a mapping.");
    List out;
    for (const auto& [k, v] : input.as_dict().items()) out.emplace_back(List{k, v}, true);
    return Value(std::move(out));
  }
  if (name == "map") {
    List out;
    const Value* attribute = args.get(99, "attribute");
    if (attribute != nullptr) {
      const Value* fallback = args.get(99, "default");
      for (const auto& item : to_list(input)) {
        Value v = attribute_of(*this, item, attribute->str());
        out.push_back(v.is_undefined() && fallback != nullptr ? *fallback : v);
      }
    } else {
      if (args.positional.empty()) render_fail("map requires a filter argument");
      CallArgs rest;
      rest.positional.assign(args.positional.begin() + 1, args.positional.end());
      rest.keyword = args.keyword;
      const std::string filter = args.positional[0].str();
      for (const auto& item : to_list(input)) out.push_back(apply_filter(filter, item, rest));
    }
    return Value(std::move(out));
  }
  if (name == "select" || name == "reject") return select(*this, input, args, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") return select(*this, input, args, true, name == "selectattr");
  if (name == "unique" || name == "sort" || name == "min" || name == "max") {
    const bool is_sort = name == "sort";
    const bool reverse = is_sort && flag(args, 0, "reverse");
    const bool case_sensitive = flag(args, is_sort ? 1 : 0, "case_sensitive");
    const Value* attribute = arg(args, is_sort ? 2 : 1, "attribute");
    List items = to_list(input);
    auto key = [&](const Value& item) {
      return sort_key(
          attribute != nullptr && !attribute->is_none() ? attribute_of(*this, item, attribute->str()) : item,
          case_sensitive);
    };
    if (name == "unique") {
      List out;
      List seen;
      for (const auto& item : items) {
        const Value k = key(item);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
          seen.push_back(k);
          out.push_back(item);
        }
      }
      return Value(std::move(out));
    }
    std::vector<std::pair<Value, Value>> keyed;
    for (auto& item : items) keyed.emplace_back(key(item), item);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
      return reverse ? less(b.first, a.first) : less(a.first, b.first);
    });
    if (name == "min" || name == "max") {
      if (keyed.empty()) return Value::undefined("no " + name + " item, sequence was empty");
      if (name == "min") return keyed.front().second;
      // max keeps the first of equal maxima, as Python's max does
      size_t best = keyed.size() - 1;
      while (best > 0 && !less(keyed[best - 1].first, keyed[best].first)) --best;
      return keyed[best].second;
    }
    List out;
    for (auto& [k, v] : keyed) out.push_back(std::move(v));
    return Value(std::move(out));
  }
  if (name == "dictsort") {
    if (!input.is_dict()) render_fail("dictsort requires a mapping");
    const bool case_sensitive = flag(args, 0, "case_sensitive");
    const Value* by = arg(args, 1, "by");
    const bool by_value = by != nullptr && by->str() == "value";
    if (by != nullptr && !by_value && by->str() != "key") render_fail("You can only sort by either 'key' or 'value'");
    const bool reverse = flag(args, 2, "reverse");
    std::vector<std::pair<Value, Value>> keyed;
    for (const auto& [k, v] : input.as_dict().items()) {
      keyed.emplace_back(sort_key(by_value ? v : k, case_sensitive), Value(List{k, v}, true));
    }
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
      return reverse ? less(b.first, a.first) : less(a.first, b.first);
    });
    List out;
    for (auto& [k, v] : keyed) out.push_back(std::move(v));
    return Value(std::move(out));
  }
  if (name == "reverse") {
    if (input.is_string()) {
      auto chars = decode_utf8(input.as_string());
      std::reverse(chars.begin(), chars.end());
      return Value(encode_utf8(chars));
    }
    List items = to_list(input);
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "indent") {
    std::string out = indent(input.str(), arg(args, 0, "width"), flag(args, 1, "first"), flag(args, 2, "blank"));
    check_size(out.size());
    return Value(std::move(out));
  }
  if (name == "escape" || name == "e") {
    std::string out;
    for (char c : input.str()) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&#34;";
          break;
        case '\'':
          out += "&#39;";
          break;
        default:
          out += c;
      }
    }
    return Value(std::move(out));
  }
  if (name == "format") {
    if (!args.keyword.empty()) render_fail("format with keyword arguments is not supported");
    return Value(percent_format(input.str(), Value(args.positional, true)));
  }
  if (name == "sum") {
    const Value* attribute = arg(args, 0, "attribute");
    const Value* start = arg(args, 1, "start");
    Value total = start != nullptr ? *start : Value(0);
    for (const auto& item : to_list(input)) {
      total =
          binary_op(*this, "+", total,
                    attribute != nullptr && !attribute->is_none() ? attribute_of(*this, item, attribute->str()) : item);
    }
    return total;
  }
  if (name == "round") {
    const Value* precision = arg(args, 0, "precision");
    const Value* method = arg(args, 1, "method");
    const double scale = std::pow(10.0, precision != nullptr ? precision->to_double() : 0.0);
    const std::string how = method != nullptr ? method->str() : "common";
    const double x = input.to_double() * scale;
    if (how == "ceil") return Value(std::ceil(x) / scale);
    if (how == "floor") return Value(std::floor(x) / scale);
    if (how != "common") render_fail("method must be common, ceil or floor");
    return Value(std::nearbyint(x) / scale);  // Python's round() rounds half to even
  }
  if (name == "attr") {
    const Value* attribute = arg(args, 0, "name");
    if (attribute == nullptr) render_fail("attr requires a name");
    return get_attr(input, attribute->str());
  }
  if (name == "wordcount") {
    int64_t words = 0;
    bool in_word = false;
    for (char32_t c : decode_utf8(input.str())) {
      const bool word_char = py_isalpha(c) || py_isdigit(c) || c == '_';  // the regex class \w
      if (word_char && !in_word) ++words;
      in_word = word_char;
    }
    return Value(words);
  }
  render_fail(fmt::format("no filter named '{}'", name));
}

}  // namespace loom::text::jinja
