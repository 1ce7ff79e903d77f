#pragma once
// The values a chat template computes with: a JSON-like variant that also carries Jinja's undefined, Python tuples,
// callables (globals, bound methods, macros) and namespace objects. Containers are shared and immutable once built
// (the template runs in an immutable sandbox), except namespaces, whose attributes `{% set ns.x %}` may change.

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loom::text::jinja {

// Raised while rendering; the interpreter adds the position of the node being evaluated.
struct RenderFailure {
  std::string message;
  int line = 0;
  int column = 0;
};

[[noreturn]] void render_fail(std::string message);

class Value;
class Interpreter;
using List = std::vector<Value>;

class Dict;
struct CallArgs;

using NativeFunction = std::function<Value(const CallArgs&, Interpreter&)>;

struct Callable {
  std::string name;
  NativeFunction function;
};

class Value {
 public:
  enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable, kNamespace };

  Value() = default;  // undefined
  static Value undefined(std::string hint = {});
  static Value none();
  Value(bool b) : kind_(Kind::kBool), bool_(b) {}
  Value(int64_t i) : kind_(Kind::kInt), int_(i) {}
  Value(int i) : kind_(Kind::kInt), int_(i) {}
  Value(double d) : kind_(Kind::kFloat), float_(d) {}
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  Value(List list, bool tuple = false);
  Value(Dict dict);
  static Value callable(std::string name, NativeFunction function);
  static Value namespace_object(Dict attributes);

  static Value from_json(const nlohmann::json& json);
  static Value from_json(const nlohmann::ordered_json& json);  // keeps the objects' key order

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }

  bool as_bool() const { return bool_; }
  int64_t as_int() const { return int_; }
  double as_float() const { return float_; }
  // Numeric value of an int, float or bool.
  double to_double() const;
  const std::string& as_string() const { return *string_; }
  const List& as_list() const { return *list_; }
  const Dict& as_dict() const { return *dict_; }
  Dict& namespace_attributes() const { return *dict_; }
  const Callable& as_callable() const { return *callable_; }
  const std::string& undefined_hint() const;

  bool truthy() const;
  // Python's len(); fails for values without a length.
  size_t length() const;
  // Python's iter(): string characters, list items, dict keys; undefined is empty.
  List iterate() const;
  // Python's str() and repr() of the value.
  std::string str() const;
  std::string repr() const;
  std::string type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;
  union {
    bool bool_;
    int64_t int_ = 0;
    double float_;
  };
  std::shared_ptr<const std::string> string_;
  std::shared_ptr<const List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Callable> callable_;
};

// An insertion-ordered mapping with Python key equality (1 == 1.0 == True).
class Dict {
 public:
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<Value, Value>> items_;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument at `index` or named `name`, or nullptr; Python-style binding for builtins.
  const Value* get(size_t index, std::string_view name) const;
  // Fails when more than `max_positional` positional arguments, or an unknown keyword, were passed.
  void check(std::string_view function, size_t max_positional, std::initializer_list<std::string_view> names) const;
};

// Python ==.
bool equals(const Value& a, const Value& b);
// Python <; fails for values Python cannot order.
bool less(const Value& a, const Value& b);

// Python json.dumps(value, ensure_ascii, indent, separators, sort_keys) as transformers' tojson filter calls it.
struct JsonOptions {
  bool ensure_ascii = false;
  std::string indent;   // one level of indentation
  bool pretty = false;  // indent given (even "" or 0): newlines between items
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
std::string to_json(const Value& value, const JsonOptions& options);

}  // namespace loom::text::jinja
