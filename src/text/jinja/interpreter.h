#pragma once
// Renders a parsed template: Jinja2's scoping (a fresh scope per loop iteration, macro and call-block closures,
// namespaces), undefined handling and the immutable sandbox, within limits on output size, loop iterations, call
// depth and total work so that a hostile template cannot hang the process or exhaust memory.

#include <memory>
#include <string>
#include <unordered_map>

#include "text/jinja/ast.h"
#include "text/jinja/value.h"

namespace loom::text::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{32} << 20;  // also bounds any single string or list built while rendering
  int64_t max_loop_iterations = 1'000'000;     // over all loops of one render
  int max_call_depth = 40;                     // nested macro and call-block invocations
  int64_t max_work = 200'000'000;              // evaluation steps plus bytes and items copied
};

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
};
using ScopePtr = std::shared_ptr<Scope>;

class Interpreter {
 public:
  explicit Interpreter(const RenderLimits& limits);

  // Renders `body` with `context` (a dict) as the template's variables; throws RenderFailure.
  std::string render(const Body& body, const Value& context);

  Value eval(const Expr& expr, const ScopePtr& scope);
  Value call(const Value& callee, const CallArgs& args);

  // Jinja's environment.getattr / getitem under the immutable sandbox.
  Value get_attr(const Value& object, const std::string& name);
  Value get_item(const Value& object, const Value& key);

  Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);  // filters.cpp
  bool apply_test(const std::string& name, const Value& input, const CallArgs& args);     // tests.cpp
  bool has_test(const std::string& name) const;
  Value string_method(const Value& text, const std::string& name);  // string_methods.cpp; undefined if unknown

  // Resource accounting: each fails with a message naming the exceeded limit.
  void charge(int64_t units);
  void check_size(size_t size);
  const RenderLimits& limits() const { return limits_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Flow exec_for(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  void exec_set(const Expr& target, const Value& value, const ScopePtr& scope);
  Value make_macro(const Stmt& stmt, const ScopePtr& scope, const Body& body);
  void emit(std::string& out, std::string_view text);
  Value lookup(const std::string& name, const ScopePtr& scope) const;
  Value eval_inner(const Expr& expr, const ScopePtr& scope);
  CallArgs eval_args(const Expr& expr, size_t first, const ScopePtr& scope);
  Value apply_filter_chain(const std::vector<ExprPtr>& filters, Value value, const ScopePtr& scope);

  RenderLimits limits_;
  ScopePtr globals_;
  int64_t iterations_ = 0;
  int64_t work_ = 0;
  int call_depth_ = 0;
};

// Operators with Python semantics (operators.cpp).
Value binary_op(Interpreter& interp, const std::string& op, const Value& a, const Value& b);
Value negate(const Value& value);
bool contains(const Value& container, const Value& item);
Value slice(const Value& object, const Value& start, const Value& stop, const Value& step);
// printf-style `%` formatting of Python strings.
std::string percent_format(const std::string& format, const Value& args);
// Jinja's `undefined` errors: using an undefined value where a real one is needed.
[[noreturn]] void undefined_error(const Value& value);

// The global functions a template can call: range, namespace, dict, raise_exception, strftime_now (globals.cpp).
void install_globals(Scope& scope);

}  // namespace loom::text::jinja
