#include "text/jinja/interpreter.h"

#include <fmt/format.h>

namespace loom::text::jinja {

Interpreter::Interpreter(const RenderLimits& limits) : limits_(limits), globals_(std::make_shared<Scope>()) {
  install_globals(*globals_);
}

void Interpreter::charge(int64_t units) {
  work_ += units;
  if (work_ > limits_.max_work) render_fail(fmt::format("template exceeded the work limit ({})", limits_.max_work));
}

void Interpreter::check_size(size_t size) {
  if (size > limits_.max_output_bytes) {
    render_fail(
        fmt::format("template built a value larger than the output limit ({} bytes)", limits_.max_output_bytes));
  }
}

void Interpreter::emit(std::string& out, std::string_view text) {
  if (out.size() + text.size() > limits_.max_output_bytes) {
    render_fail(fmt::format("template output exceeds {} bytes", limits_.max_output_bytes));
  }
  charge(static_cast<int64_t>(text.size() / 16));
  out += text;
}

std::string Interpreter::render(const Body& body, const Value& context) {
  auto scope = std::make_shared<Scope>();
  scope->parent = globals_;
  if (context.is_dict()) {
    for (const auto& [k, v] : context.as_dict().items()) {
      if (k.is_string()) scope->vars[k.as_string()] = v;
    }
  }
  std::string out;
  exec_body(body, scope, out);
  return out;
}

Value Interpreter::lookup(const std::string& name, const ScopePtr& scope) const {
  for (const Scope* s = scope.get(); s != nullptr; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return it->second;
  }
  return Value::undefined("'" + name + "' is undefined");
}

Interpreter::Flow Interpreter::exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& stmt : body) {
    const Flow flow = exec(*stmt, scope, out);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  try {
    charge(1);
    switch (stmt.kind) {
      case Stmt::Kind::kText:
        emit(out, stmt.text);
        return Flow::kNormal;
      case Stmt::Kind::kOutput: {
        const Value value = eval(*stmt.expr, scope);
        emit(out, value.str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kIf:
        for (const auto& [condition, body] : stmt.branches) {
          if (!condition || eval(*condition, scope).truthy()) return exec_body(body, scope, out);
        }
        return Flow::kNormal;
      case Stmt::Kind::kFor:
        return exec_for(stmt, scope, out);
      case Stmt::Kind::kSet:
        exec_set(*stmt.target, eval(*stmt.expr, scope), scope);
        return Flow::kNormal;
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        exec_body(stmt.body, scope, captured);
        exec_set(*stmt.target, apply_filter_chain(stmt.filters, Value(std::move(captured)), scope), scope);
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        scope->vars[stmt.name] = make_macro(stmt, scope, stmt.body);
        return Flow::kNormal;
      case Stmt::Kind::kCallBlock: {
        const Expr& call_expr = *stmt.expr;
        const Value callee = eval(*call_expr.children[0], scope);
        CallArgs args = eval_args(call_expr, 1, scope);
        args.keyword.emplace_back("caller", make_macro(stmt, scope, stmt.body));
        emit(out, call(callee, args).str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kFilterBlock: {
        std::string captured;
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        exec_body(stmt.body, inner, captured);
        emit(out, apply_filter_chain(stmt.filters, Value(std::move(captured)), scope).str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kWith: {
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        std::vector<Value> values;
        for (const auto& [target, value] : stmt.assignments) values.push_back(eval(*value, scope));
        for (size_t i = 0; i < values.size(); ++i) exec_set(*stmt.assignments[i].first, values[i], inner);
        return exec_body(stmt.body, inner, out);
      }
      case Stmt::Kind::kScope:
        return exec_body(stmt.body, scope, out);
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
    }
  } catch (RenderFailure& failure) {
    if (failure.line == 0) {
      failure.line = stmt.line;
      failure.column = stmt.column;
    }
    throw;
  }
  return Flow::kNormal;
}

static void bind_target(Interpreter& interp, const Expr& target, const Value& value, Scope& scope) {
  if (target.kind == Expr::Kind::kName) {
    scope.vars[target.name] = value;
    return;
  }
  if (value.is_undefined()) undefined_error(value);
  const List items = value.iterate();
  if (items.size() != target.children.size()) {
    render_fail(fmt::format("cannot unpack {} values into {} names", items.size(), target.children.size()));
  }
  for (size_t i = 0; i < items.size(); ++i) bind_target(interp, *target.children[i], items[i], scope);
}

void Interpreter::exec_set(const Expr& target, const Value& value, const ScopePtr& scope) {
  if (target.kind == Expr::Kind::kGetAttr) {
    const Value object = lookup(target.children[0]->name, scope);
    if (!object.is_namespace()) render_fail("cannot assign attribute on non-namespace object");
    object.namespace_attributes().set(Value(target.name), value);
    return;
  }
  bind_target(*this, target, value, *scope);
}

Interpreter::Flow Interpreter::exec_for(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  const Value iterable = eval(*stmt.expr, scope);
  List items = iterable.iterate();
  charge(static_cast<int64_t>(items.size()));
  if (stmt.condition) {
    List kept;
    for (auto& item : items) {
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      bind_target(*this, *stmt.target, item, *probe);
      if (eval(*stmt.condition, probe).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    exec_body(stmt.else_body, inner, out);
    return Flow::kNormal;
  }
  const auto length = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < length; ++i) {
    if (++iterations_ > limits_.max_loop_iterations) {
      render_fail(fmt::format("template exceeded {} loop iterations", limits_.max_loop_iterations));
    }
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    Dict loop;
    loop.set(Value("index"), Value(i + 1));
    loop.set(Value("index0"), Value(i));
    loop.set(Value("revindex"), Value(length - i));
    loop.set(Value("revindex0"), Value(length - i - 1));
    loop.set(Value("first"), Value(i == 0));
    loop.set(Value("last"), Value(i == length - 1));
    loop.set(Value("length"), Value(length));
    loop.set(Value("depth"), Value(1));
    loop.set(Value("depth0"), Value(0));
    loop.set(Value("previtem"), i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("no previous item"));
    loop.set(Value("nextitem"), i + 1 < length ? items[static_cast<size_t>(i + 1)] : Value::undefined("no next item"));
    loop.set(Value("cycle"), Value::callable("cycle", [i](const CallArgs& args, Interpreter&) {
               if (args.positional.empty()) render_fail("no items for cycling given");
               return args.positional[static_cast<size_t>(i) % args.positional.size()];
             }));
    inner->vars["loop"] = Value(std::move(loop));
    bind_target(*this, *stmt.target, items[static_cast<size_t>(i)], *inner);
    if (exec_body(stmt.body, inner, out) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

Value Interpreter::make_macro(const Stmt& stmt, const ScopePtr& scope, const Body& body) {
  const Stmt* definition = &stmt;
  const Body* macro_body = &body;
  std::weak_ptr<Scope> weak_closure = scope;  // a macro stored in its own scope must not keep it alive
  ScopePtr strong_closure = stmt.kind == Stmt::Kind::kMacro ? nullptr : scope;
  return Value::callable(
      stmt.name, [definition, macro_body, weak_closure, strong_closure](const CallArgs& args, Interpreter& interp) {
        ScopePtr closure = strong_closure ? strong_closure : weak_closure.lock();
        if (!closure) render_fail("macro called after its scope ended");
        if (++interp.call_depth_ > interp.limits_.max_call_depth) {
          --interp.call_depth_;
          render_fail(fmt::format("macro calls nested deeper than {}", interp.limits_.max_call_depth));
        }
        struct DepthGuard {
          int& depth;
          ~DepthGuard() { --depth; }
        } guard{interp.call_depth_};
        const auto& params = definition->params;
        if (args.positional.size() > params.size()) {
          render_fail(fmt::format("macro '{}' takes not more than {} argument(s)", definition->name, params.size()));
        }
        auto scope = std::make_shared<Scope>();
        scope->parent = closure;
        for (size_t i = 0; i < args.positional.size(); ++i) scope->vars[params[i].name] = args.positional[i];
        for (const auto& [key, value] : args.keyword) {
          bool known = key == "caller";
          for (size_t i = 0; i < params.size(); ++i) {
            if (params[i].name != key) continue;
            if (i < args.positional.size())
              render_fail(fmt::format("macro got multiple values for argument '{}'", key));
            known = true;
          }
          if (!known)
            render_fail(fmt::format("macro '{}' got an unexpected keyword argument '{}'", definition->name, key));
          scope->vars[key] = value;
        }
        for (size_t i = args.positional.size(); i < params.size(); ++i) {
          if (scope->vars.count(params[i].name) != 0) continue;
          scope->vars[params[i].name] = params[i].default_value ? interp.eval(*params[i].default_value, scope)
                                                                : Value::undefined("missing argument");
        }
        std::string out;
        interp.exec_body(*macro_body, scope, out);
        return Value(std::move(out));
      });
}

Value Interpreter::apply_filter_chain(const std::vector<ExprPtr>& filters, Value value, const ScopePtr& scope) {
  for (const auto& filter : filters) {
    try {
      value = apply_filter(filter->name, value, eval_args(*filter, 1, scope));
    } catch (RenderFailure& failure) {
      if (failure.line == 0) {
        failure.line = filter->line;
        failure.column = filter->column;
      }
      throw;
    }
  }
  return value;
}

CallArgs Interpreter::eval_args(const Expr& expr, size_t first, const ScopePtr& scope) {
  CallArgs args;
  for (size_t i = first; i < expr.children.size(); ++i) args.positional.push_back(eval(*expr.children[i], scope));
  for (const auto& [key, value] : expr.keywords) args.keyword.emplace_back(key, eval(*value, scope));
  return args;
}

Value Interpreter::call(const Value& callee, const CallArgs& args) {
  if (callee.is_undefined()) undefined_error(callee);
  if (!callee.is_callable()) render_fail(fmt::format("'{}' object is not callable", callee.type_name()));
  Value result = callee.as_callable().function(args, *this);
  if (result.is_string()) check_size(result.as_string().size());
  return result;
}

Value Interpreter::eval(const Expr& expr, const ScopePtr& scope) {
  try {
    charge(1);
    return eval_inner(expr, scope);
  } catch (RenderFailure& failure) {
    if (failure.line == 0) {
      failure.line = expr.line;
      failure.column = expr.column;
    }
    throw;
  }
}

Value Interpreter::eval_inner(const Expr& expr, const ScopePtr& scope) {
  const auto& c = expr.children;
  switch (expr.kind) {
    case Expr::Kind::kLiteral:
      return expr.literal;
    case Expr::Kind::kName:
      return lookup(expr.name, scope);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      List items;
      for (const auto& child : c) items.push_back(eval(*child, scope));
      return Value(std::move(items), expr.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      Dict dict;
      for (size_t i = 0; i + 1 < c.size(); i += 2) dict.set(eval(*c[i], scope), eval(*c[i + 1], scope));
      return Value(std::move(dict));
    }
    case Expr::Kind::kGetAttr:
      return get_attr(eval(*c[0], scope), expr.name);
    case Expr::Kind::kGetItem:
      return get_item(eval(*c[0], scope), eval(*c[1], scope));
    case Expr::Kind::kSlice: {
      const Value object = eval(*c[0], scope);
      auto part = [&](size_t i) { return c[i] ? eval(*c[i], scope) : Value::none(); };
      return slice(object, part(1), part(2), part(3));
    }
    case Expr::Kind::kCall:
      return call(eval(*c[0], scope), eval_args(expr, 1, scope));
    case Expr::Kind::kFilter:
      return apply_filter(expr.name, eval(*c[0], scope), eval_args(expr, 1, scope));
    case Expr::Kind::kTest: {
      const bool result = apply_test(expr.name, eval(*c[0], scope), eval_args(expr, 1, scope));
      return Value(expr.negated ? !result : result);
    }
    case Expr::Kind::kNegate:
      return negate(eval(*c[0], scope));
    case Expr::Kind::kPlus: {
      Value v = eval(*c[0], scope);
      if (v.is_undefined()) undefined_error(v);
      if (!v.is_number()) render_fail(fmt::format("bad operand type for unary +: '{}'", v.type_name()));
      return v.is_bool() ? Value(static_cast<int64_t>(v.as_bool())) : v;
    }
    case Expr::Kind::kNot:
      return Value(!eval(*c[0], scope).truthy());
    case Expr::Kind::kBinary:
      return binary_op(*this, expr.name, eval(*c[0], scope), eval(*c[1], scope));
    case Expr::Kind::kConcat: {
      std::string out;
      for (const auto& child : c) {
        out += eval(*child, scope).str();
        check_size(out.size());
      }
      charge(static_cast<int64_t>(out.size() / 16));
      return Value(std::move(out));
    }
    case Expr::Kind::kCompare: {
      Value left = eval(*c[0], scope);
      for (size_t i = 0; i < expr.ops.size(); ++i) {
        Value right = eval(*c[i + 1], scope);
        const std::string& op = expr.ops[i];
        bool result;
        if (op == "==") {
          result = equals(left, right);
        } else if (op == "!=") {
          result = !equals(left, right);
        } else if (op == "<") {
          result = less(left, right);
        } else if (op == ">") {
          result = less(right, left);
        } else if (op == "<=") {
          result = less(left, right) || equals(left, right);
        } else if (op == ">=") {
          result = less(right, left) || equals(left, right);
        } else if (op == "in") {
          result = contains(right, left);
        } else {
          result = !contains(right, left);
        }
        if (!result) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case Expr::Kind::kAnd: {
      Value left = eval(*c[0], scope);
      return left.truthy() ? eval(*c[1], scope) : left;
    }
    case Expr::Kind::kOr: {
      Value left = eval(*c[0], scope);
      return left.truthy() ? left : eval(*c[1], scope);
    }
    case Expr::Kind::kCondition:
      if (eval(*c[0], scope).truthy()) return eval(*c[1], scope);
      return c[2] ? eval(*c[2], scope) : Value::undefined("conditional expression has no else branch");
  }
  return Value();
}

}  // namespace loom::text::jinja
