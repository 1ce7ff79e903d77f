#pragma once
// The parsed form of a template: expressions and statements, each remembering where it starts for error messages.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja/value.h"

namespace loom::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // literal
    kName,       // name
    kList,       // children
    kTuple,      // children
    kDict,       // children: key, value, key, value, ...
    kGetAttr,    // children[0].name
    kGetItem,    // children[0][children[1]]
    kSlice,      // children[0][children[1]:children[2]:children[3]] (null parts omitted)
    kCall,       // children[0](children[1..], keywords)
    kFilter,     // children[0] | name(children[1..], keywords); children[0] null inside a filter block
    kTest,       // children[0] is name(children[1..]); negated for `is not`
    kNegate,     // -children[0]
    kPlus,       // +children[0]
    kNot,        // not children[0]
    kBinary,     // children[0] name children[1] for + - * / // % **
    kConcat,     // children joined with ~
    kCompare,    // children[0] ops[0] children[1] ops[1] children[2] ...
    kAnd,        // children[0] and children[1]
    kOr,         // children[0] or children[1]
    kCondition,  // children[1] if children[0] else children[2] (null: undefined)
  };
  Kind kind;
  int line = 0;
  int column = 0;
  Value literal;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> keywords;
  std::vector<std::string> ops;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // branches (condition, body); a null condition is the else branch
    kFor,          // for target in expr [if condition]: body else else_body
    kSet,          // set target = expr
    kSetBlock,     // set target [| filters]: body
    kMacro,        // macro name(params): body
    kCallBlock,    // call(params) expr: body
    kFilterBlock,  // filter filters: body
    kWith,         // with target = expr, ...: body (targets in assignments)
    kScope,        // a body rendered as is (transformers' generation block)
    kBreak,
    kContinue,
  };
  Kind kind;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr target;
  ExprPtr condition;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::string name;
  std::vector<MacroParam> params;
  std::vector<ExprPtr> filters;  // kFilter expressions with a null input, applied in order
  std::vector<std::pair<ExprPtr, ExprPtr>> assignments;
};

}  // namespace loom::text::jinja
