#include "text/jinja/parser.h"

#include <algorithm>
#include <initializer_list>

#include "core/error.h"

namespace loom::text::jinja {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, const ParseLimits& limits) : tokens_(std::move(tokens)), limits_(limits) {}

  Body parse() {
    Body body = parse_body({});
    if (current().type != TokenType::kEnd) error(current(), "unexpected tag '" + current().value + "'");
    return body;
  }

 private:
  // Depth guard for recursive descent.
  struct Nest {
    explicit Nest(Parser& p) : parser(p) {
      if (++parser.depth_ > parser.limits_.max_depth) parser.error(parser.current(), "template nested too deeply");
    }
    ~Nest() { --parser.depth_; }
    Parser& parser;
  };

  const Token& current() const { return tokens_[pos_]; }
  const Token& peek(size_t n = 1) const { return tokens_[std::min(pos_ + n, tokens_.size() - 1)]; }
  const Token& advance() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }

  [[noreturn]] void error(const Token& at, const std::string& message) const {
    fail(ErrorKind::kInvalidRequest, "chat template syntax error: {} (line {}, column {})", message, at.line,
         at.column);
  }

  bool is_op(std::string_view op) const { return current().type == TokenType::kOperator && current().value == op; }
  bool is_name(std::string_view name) const { return current().type == TokenType::kName && current().value == name; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) error(current(), "expected '" + std::string(op) + "'" + describe_current());
  }
  void expect_name(std::string_view name) {
    if (!skip_name(name)) error(current(), "expected '" + std::string(name) + "'" + describe_current());
  }
  std::string expect_identifier() {
    if (current().type != TokenType::kName) error(current(), "expected a name" + describe_current());
    return advance().value;
  }
  void expect_block_end() {
    if (current().type != TokenType::kBlockEnd)
      error(current(), "expected end of statement block" + describe_current());
    advance();
  }
  std::string describe_current() const {
    switch (current().type) {
      case TokenType::kEnd:
        return ", got end of template";
      case TokenType::kBlockEnd:
      case TokenType::kVariableEnd:
        return ", got end of tag";
      default:
        return ", got '" + current().value + "'";
    }
  }

  static ExprPtr make(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  // ---- statements ----

  Body parse_body(std::initializer_list<std::string_view> stop) {
    Nest nest(*this);
    Body body;
    while (true) {
      const Token& token = current();
      if (token.type == TokenType::kEnd) {
        if (stop.size() != 0) error(token, "unexpected end of template, expected '" + std::string(*stop.begin()) + "'");
        return body;
      }
      if (token.type == TokenType::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = token.line;
        s->column = token.column;
        s->text = token.value;
        body.push_back(std::move(s));
        advance();
      } else if (token.type == TokenType::kVariableBegin) {
        advance();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = token.line;
        s->column = token.column;
        s->expr = parse_tuple(true, {}, false);
        if (current().type != TokenType::kVariableEnd)
          error(current(), "expected end of print statement" + describe_current());
        advance();
        body.push_back(std::move(s));
      } else if (token.type == TokenType::kBlockBegin) {
        const Token& tag = peek();
        if (tag.type == TokenType::kName && std::find(stop.begin(), stop.end(), tag.value) != stop.end()) {
          advance();  // leaves the stop tag's name current
          return body;
        }
        advance();
        body.push_back(parse_statement());
      } else {
        error(token, "unexpected token");
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& tag = current();
    if (tag.type != TokenType::kName) error(tag, "expected a statement name" + describe_current());
    auto s = std::make_unique<Stmt>();
    s->line = tag.line;
    s->column = tag.column;
    const std::string name = advance().value;
    if (name == "if") {
      s->kind = Stmt::Kind::kIf;
      ExprPtr condition = parse_expression(true);
      while (true) {
        expect_block_end();
        Body body = parse_body({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(condition), std::move(body));
        const std::string next = advance().value;
        if (next == "elif") {
          condition = parse_expression(true);
          continue;
        }
        if (next == "else") {
          expect_block_end();
          s->branches.emplace_back(nullptr, parse_body({"endif"}));
          advance();
        }
        break;
      }
    } else if (name == "for") {
      s->kind = Stmt::Kind::kFor;
      s->target = parse_assign_target(false, {"in"});
      expect_name("in");
      s->expr = parse_tuple(false, {"recursive"}, false);
      if (skip_name("if")) s->condition = parse_expression(true);
      if (is_name("recursive")) error(current(), "recursive loops are not supported");
      expect_block_end();
      ++loop_depth_;
      s->body = parse_body({"endfor", "else"});
      --loop_depth_;
      if (advance().value == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"});
        advance();
      }
    } else if (name == "set") {
      s->target = parse_assign_target(true, {});
      if (skip_op("=")) {
        s->kind = Stmt::Kind::kSet;
        s->expr = parse_tuple(true, {}, false);
      } else {
        s->kind = Stmt::Kind::kSetBlock;
        parse_filter_chain(s->filters);
        expect_block_end();
        s->body = parse_body({"endset"});
        advance();
      }
    } else if (name == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->name = expect_identifier();
      parse_params(s->params);
      expect_block_end();
      const int saved = loop_depth_;
      loop_depth_ = 0;
      s->body = parse_body({"endmacro"});
      loop_depth_ = saved;
      advance();
    } else if (name == "call") {
      s->kind = Stmt::Kind::kCallBlock;
      if (is_op("(")) parse_params(s->params);
      s->expr = parse_expression(true);
      if (s->expr->kind != Expr::Kind::kCall) error(tag, "expected a call expression");
      expect_block_end();
      const int saved = loop_depth_;
      loop_depth_ = 0;
      s->body = parse_body({"endcall"});
      loop_depth_ = saved;
      advance();
    } else if (name == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      if (current().type != TokenType::kName) error(current(), "expected a filter name");
      s->filters.push_back(parse_filter(nullptr, false));
      parse_filter_chain(s->filters);
      expect_block_end();
      s->body = parse_body({"endfilter"});
      advance();
    } else if (name == "with") {
      s->kind = Stmt::Kind::kWith;
      while (current().type != TokenType::kBlockEnd) {
        if (!s->assignments.empty()) expect_op(",");
        ExprPtr target = parse_assign_target(false, {});
        expect_op("=");
        s->assignments.emplace_back(std::move(target), parse_expression(true));
      }
      expect_block_end();
      s->body = parse_body({"endwith"});
      advance();
    } else if (name == "generation") {
      s->kind = Stmt::Kind::kScope;
      expect_block_end();
      s->body = parse_body({"endgeneration"});
      advance();
    } else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error(tag, "'" + name + "' outside of a loop");
      s->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
    } else {
      error(tag, "unknown or unsupported tag '" + name + "'");
    }
    expect_block_end();
    return s;
  }

  void parse_filter_chain(std::vector<ExprPtr>& filters) {
    while (skip_op("|")) filters.push_back(parse_filter(nullptr, false));
  }

  void parse_params(std::vector<MacroParam>& params) {
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam param;
      param.name = expect_identifier();
      if (skip_op("=")) {
        param.default_value = parse_expression(true);
      } else if (!params.empty() && params.back().default_value) {
        error(current(), "non-default argument follows default argument");
      }
      params.push_back(std::move(param));
    }
    advance();
  }

  // A name, a tuple of names, or (with_namespace) name.attribute.
  ExprPtr parse_assign_target(bool with_namespace, std::initializer_list<std::string_view> end_names) {
    const Token& start = current();
    if (with_namespace && start.type == TokenType::kName && peek().type == TokenType::kOperator &&
        peek().value == ".") {
      auto name = make(Expr::Kind::kName, start);
      name->name = advance().value;
      advance();
      auto attr = make(Expr::Kind::kGetAttr, start);
      attr->name = expect_identifier();
      attr->children.push_back(std::move(name));
      return attr;
    }
    auto tuple = make(Expr::Kind::kTuple, start);
    bool is_tuple = false;
    while (true) {
      if (!tuple->children.empty()) expect_op(",");
      if (current().type == TokenType::kName &&
          std::find(end_names.begin(), end_names.end(), current().value) != end_names.end()) {
        break;
      }
      if (is_op("(")) {
        advance();
        tuple->children.push_back(parse_assign_target(false, {}));
        expect_op(")");
      } else {
        auto name = make(Expr::Kind::kName, current());
        name->name = expect_identifier();
        tuple->children.push_back(std::move(name));
      }
      if (!is_op(",")) break;
      is_tuple = true;
    }
    if (tuple->children.empty()) error(start, "expected an assignment target");
    if (!is_tuple) return std::move(tuple->children[0]);
    return tuple;
  }

  // ---- expressions ----

  bool is_tuple_end(std::initializer_list<std::string_view> extra) const {
    const Token& t = current();
    if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || t.type == TokenType::kEnd) return true;
    if (t.type == TokenType::kOperator && t.value == ")") return true;
    return t.type == TokenType::kName && std::find(extra.begin(), extra.end(), t.value) != extra.end();
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> extra, bool explicit_parens) {
    const Token& start = current();
    auto tuple = make(Expr::Kind::kTuple, start);
    bool is_tuple = false;
    while (true) {
      if (!tuple->children.empty()) expect_op(",");
      if (is_tuple_end(extra)) break;
      tuple->children.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!tuple->children.empty()) return std::move(tuple->children[0]);
      if (!explicit_parens) error(start, "expected an expression" + describe_current());
    }
    return tuple;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nest nest(*this);
    if (!with_condexpr) return parse_or();
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      auto cond = make(Expr::Kind::kCondition, advance());
      cond->children.push_back(parse_or());
      cond->children.push_back(std::move(expr));
      cond->children.push_back(skip_name("else") ? parse_expression(true) : nullptr);
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr binary(Expr::Kind kind, const Token& at, ExprPtr left, ExprPtr right, std::string op = {}) {
    auto e = make(kind, at);
    e->name = std::move(op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Token& at = advance();
      left = binary(Expr::Kind::kOr, at, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Token& at = advance();
      left = binary(Expr::Kind::kAnd, at, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nest nest(*this);
      auto e = make(Expr::Kind::kNot, advance());
      e->children.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& start = current();
    ExprPtr first = parse_math1();
    ExprPtr compare;
    while (true) {
      std::string op;
      const Token& t = current();
      if (t.type == TokenType::kOperator && (t.value == "==" || t.value == "!=" || t.value == "<" || t.value == "<=" ||
                                             t.value == ">" || t.value == ">=")) {
        op = t.value;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == TokenType::kName && peek().value == "in") {
        op = "notin";
        advance();
        advance();
      } else {
        break;
      }
      if (!compare) {
        compare = make(Expr::Kind::kCompare, start);
        compare->children.push_back(std::move(first));
      }
      compare->ops.push_back(op);
      compare->children.push_back(parse_math1());
    }
    return compare ? std::move(compare) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = advance();
      left = binary(Expr::Kind::kBinary, at, std::move(left), parse_concat(), at.value);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const Token& start = current();
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto concat = make(Expr::Kind::kConcat, start);
    concat->children.push_back(std::move(first));
    while (skip_op("~")) concat->children.push_back(parse_math2());
    return concat;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = advance();
      left = binary(Expr::Kind::kBinary, at, std::move(left), parse_pow(), at.value);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token& at = advance();
      left = binary(Expr::Kind::kBinary, at, std::move(left), parse_unary(true), "**");
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& at = advance();
      node = make(at.value == "-" ? Expr::Kind::kNegate : Expr::Kind::kPlus, at);
      node->children.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = current();
    switch (t.type) {
      case TokenType::kName: {
        advance();
        if (t.value == "true" || t.value == "True" || t.value == "false" || t.value == "False") {
          auto e = make(Expr::Kind::kLiteral, t);
          e->literal = Value(t.value == "true" || t.value == "True");
          return e;
        }
        if (t.value == "none" || t.value == "None") {
          auto e = make(Expr::Kind::kLiteral, t);
          e->literal = Value::none();
          return e;
        }
        auto e = make(Expr::Kind::kName, t);
        e->name = t.value;
        return e;
      }
      case TokenType::kString: {
        std::string s = advance().value;
        while (current().type == TokenType::kString) s += advance().value;
        auto e = make(Expr::Kind::kLiteral, t);
        e->literal = Value(std::move(s));
        return e;
      }
      case TokenType::kInt: {
        auto e = make(Expr::Kind::kLiteral, advance());
        e->literal = Value(t.int_value);
        return e;
      }
      case TokenType::kFloat: {
        auto e = make(Expr::Kind::kLiteral, advance());
        e->literal = Value(t.float_value);
        return e;
      }
      case TokenType::kOperator:
        if (t.value == "(") {
          advance();
          ExprPtr e = parse_tuple(true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.value == "[") {
          auto e = make(Expr::Kind::kList, advance());
          while (!is_op("]")) {
            if (!e->children.empty()) expect_op(",");
            if (is_op("]")) break;
            e->children.push_back(parse_expression(true));
          }
          advance();
          return e;
        }
        if (t.value == "{") {
          auto e = make(Expr::Kind::kDict, advance());
          while (!is_op("}")) {
            if (!e->children.empty()) expect_op(",");
            if (is_op("}")) break;
            e->children.push_back(parse_expression(true));
            expect_op(":");
            e->children.push_back(parse_expression(true));
          }
          advance();
          return e;
        }
        break;
      default:
        break;
    }
    error(t, "unexpected token" + describe_current());
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        advance();
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& at = advance();
    if (at.value == ".") {
      const Token& attr = current();
      if (attr.type == TokenType::kName) {
        auto e = make(Expr::Kind::kGetAttr, attr);
        e->line = node->line;
        e->column = node->column;
        e->name = advance().value;
        e->children.push_back(std::move(node));
        return e;
      }
      if (attr.type == TokenType::kInt) {
        auto e = make(Expr::Kind::kGetItem, attr);
        auto key = make(Expr::Kind::kLiteral, attr);
        key->literal = Value(advance().int_value);
        e->children.push_back(std::move(node));
        e->children.push_back(std::move(key));
        return e;
      }
      error(attr, "expected an attribute name" + describe_current());
    }
    // [expr] or [start:stop:step]
    std::vector<ExprPtr> parts;
    bool is_slice = false;
    auto part = [&]() -> ExprPtr {
      if (is_op(":") || is_op("]")) return nullptr;
      return parse_expression(true);
    };
    parts.push_back(part());
    if (skip_op(":")) {
      is_slice = true;
      parts.push_back(part());
      if (skip_op(":")) {
        parts.push_back(part());
      } else {
        parts.push_back(nullptr);
      }
    }
    if (!is_slice && parts[0] == nullptr) error(current(), "expected a subscript");
    expect_op("]");
    auto e = make(is_slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, at);
    e->line = node->line;
    e->column = node->column;
    e->children.push_back(std::move(node));
    for (auto& p : parts) e->children.push_back(std::move(p));
    return e;
  }

  void parse_args(Expr& call) {
    expect_op("(");
    bool any = false;
    while (!is_op(")")) {
      if (any) expect_op(",");
      if (is_op(")")) break;
      any = true;
      if (is_op("*") || is_op("**")) error(current(), "*args and **kwargs in calls are not supported");
      if (current().type == TokenType::kName && peek().type == TokenType::kOperator && peek().value == "=") {
        std::string key = advance().value;
        advance();
        call.keywords.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!call.keywords.empty()) error(current(), "positional argument follows keyword argument");
        call.children.push_back(parse_expression(true));
      }
    }
    advance();
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(Expr::Kind::kCall, current());
    e->line = node->line;
    e->column = node->column;
    e->children.push_back(std::move(node));
    parse_args(*e);
    return e;
  }

  ExprPtr parse_filter(ExprPtr node, bool) {
    auto e = make(Expr::Kind::kFilter, current());
    e->name = expect_identifier();
    while (is_op(".")) {
      advance();
      e->name += "." + expect_identifier();
    }
    e->children.push_back(std::move(node));
    if (is_op("(")) parse_args(*e);
    return e;
  }

  ExprPtr parse_test(ExprPtr node) {
    auto e = make(Expr::Kind::kTest, advance());
    if (skip_name("not")) e->negated = true;
    e->name = expect_identifier();
    while (is_op(".")) {
      advance();
      e->name += "." + expect_identifier();
    }
    e->children.push_back(std::move(node));
    const Token& t = current();
    if (is_op("(")) {
      parse_args(*e);
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInt ||
                t.type == TokenType::kFloat || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      ExprPtr arg = parse_postfix(parse_primary());
      e->children.push_back(std::move(arg));
    }
    return e;
  }

  std::vector<Token> tokens_;
  ParseLimits limits_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse_template(std::string_view source, const ParseLimits& limits) {
  return Parser(tokenize(source), limits).parse();
}

}  // namespace loom::text::jinja
