"""Azure Digital Twins event route filters, compiled once.

``compile_route_filter(text)`` parses an ADT route filter (``true``, ``false``, or comparisons of the notification
attributes ``type``, ``source``, ``subject``, ``id``, ``dataschema``, ``datacontenttype``, ``specversion`` and
``$body.<path>`` against literals, combined with ``AND``/``OR``/parentheses, plus ``STARTS_WITH``, ``ENDS_WITH``,
``CONTAINS``); ``RouteFilter.matches(notification)`` evaluates it on a CloudEvents-shaped ADT notification dict
(``$body`` is its ``data``). ``to_text()`` prints a canonical form that parses back to the same filter. Syntax
errors raise ``RouteFilterSyntaxError`` (a ``ValueError``) carrying ``.position``.

Documented rules (docs/azure-behaviour.md §4): comparisons ``= != < <= > >=``; string/int/double/bool/null literals;
filters are
case-sensitive (values and attribute names); no filtering on array contents.

Choices where the documentation is silent (each is tested in ``tests/filters``):

* An attribute or ``$body`` path that is absent makes every comparison and function on it false — ``!=``
  included (``$body.x != 'a'`` needs ``x`` present). ``= null`` is true only for a present JSON null.
* Values of different types are unequal: ``=`` is false, ``!=`` true; ordering (``< <= > >=``) is defined for two
  numbers or two strings (ordinal) only, otherwise false. Booleans are not numbers.
* Arrays and objects only support ``!=``/``=`` against literals, which are scalars: ``=`` is false, ``!=`` true.
  ``STARTS_WITH``/``ENDS_WITH``/``CONTAINS`` need two strings, otherwise false. No array indexes in paths.
* Keywords (``AND``, ``OR``, ``true``, ``false``, ``null``) and function names are case-insensitive; attribute
  names and ``$body`` paths are case-sensitive; unknown attribute names are syntax errors. ``NOT`` is not part of
  the language. Either side of a comparison may be the attribute (``'x' = type`` is accepted).
* Strings use single or double quotes with the same escapes as IoT Hub routing queries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.filters.lexer import (
    CompiledExpression,
    Lexicon,
    QuerySyntaxError,
    Token,
    TokenCursor,
    dict_path,
    ordered,
    quote_string,
    tokenize,
)

__all__ = ["ATTRIBUTES", "RouteFilter", "RouteFilterSyntaxError", "compile_route_filter"]

ATTRIBUTES: Final = ("type", "source", "subject", "id", "dataschema", "datacontenttype", "specversion")
_FUNCTIONS: Final = ("STARTS_WITH", "ENDS_WITH", "CONTAINS")
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!="}


class RouteFilterSyntaxError(QuerySyntaxError):
    """An ADT route filter that does not parse (``EventRouteFilterInvalid``); ``.position`` is 0-based."""


class _Absent:
    __slots__ = ()


_ABSENT: Final = _Absent()


# kinds: STR NUM NAME OP ( ) , EOF; a name takes in its dots (a $body path is one token), a number its sign
_LEXICON: Final = Lexicon(punct="(),", ops=("<=", ">=", "!=", "=", "<", ">"), name_chars="_$.", signs="-+",
                          error=RouteFilterSyntaxError)


# AST ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # an attribute name, or "$body"
    path: tuple[str, ...] = ()

    def text(self) -> str:
        return ".".join((self.name, *self.path))


@dataclass(frozen=True, slots=True)
class Const:
    value: Any  # str, int, float, bool, None


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Field | Const
    right: Field | Const


@dataclass(frozen=True, slots=True)
class Func:
    name: str
    left: Field | Const
    right: Field | Const


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND / OR
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class BoolConst:
    value: bool


Node = Compare | Func | BoolOp | BoolConst


class _Parser(TokenCursor):
    error_type = RouteFilterSyntaxError

    def __init__(self, text: str) -> None:
        super().__init__(text, tokenize(text, _LEXICON))

    def keyword(self, *words: str) -> str | None:
        t = self.peek()
        if t.kind == "NAME" and t.value.lower() in words:
            return str(t.value).lower()
        return None

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            raise self.error("empty filter (use true or false)")
        node = self.bool_expr("or")
        t = self.peek()
        if t.kind != "EOF":
            raise self.error(f"unexpected {_describe(t)}")
        return node

    def bool_expr(self, op: str) -> Node:
        items = [self.bool_expr("and") if op == "or" else self.atom()]
        while self.keyword(op):
            self.take()
            items.append(self.bool_expr("and") if op == "or" else self.atom())
        return items[0] if len(items) == 1 else BoolOp(op.upper(), tuple(items))

    def atom(self) -> Node:
        t = self.peek()
        if t.kind == "(":
            self.take()
            node = self.bool_expr("or")
            if self.peek().kind != ")":
                raise self.error(f"expected ')', found {_describe(self.peek())}")
            self.take()
            return node
        if t.kind == "NAME" and t.value.upper() in _FUNCTIONS and self.toks[self.i + 1].kind == "(":
            self.take()
            self.take()
            left = self.operand()
            if self.peek().kind != ",":
                raise self.error(f"expected ',', found {_describe(self.peek())}")
            self.take()
            right = self.operand()
            if self.peek().kind != ")":
                raise self.error(f"expected ')', found {_describe(self.peek())}")
            self.take()
            return Func(str(t.value).upper(), left, right)
        if t.kind == "NAME" and t.value.lower() == "not":
            raise self.error("NOT is not supported in ADT route filters")
        left = self.operand()
        op_tok = self.peek()
        if op_tok.kind != "OP":
            if isinstance(left, Const) and isinstance(left.value, bool):
                return BoolConst(left.value)
            raise self.error(f"expected a comparison operator, found {_describe(op_tok)}")
        self.take()
        right = self.operand()
        if isinstance(left, Const) and isinstance(right, Const):
            raise self.error("a comparison needs an attribute or $body path on one side", t)
        return Compare(str(op_tok.value), left, right)

    def operand(self) -> Field | Const:
        t = self.take()
        if t.kind in ("STR", "NUM"):
            return Const(t.value)
        if t.kind == "NAME":
            word = str(t.value)
            low = word.lower()
            if low in ("true", "false"):
                return Const(low == "true")
            if low == "null":
                return Const(None)
            parts = word.split(".")
            if any(not p for p in parts):
                raise self.error(f"malformed path {word!r}", t)
            if parts[0] == "$body":
                return Field("$body", tuple(parts[1:]))
            if len(parts) == 1 and word in ATTRIBUTES:
                return Field(word)
            raise self.error(f"unknown attribute {word!r} (expected one of {', '.join(ATTRIBUTES)} or $body.…)", t)
        raise self.error(f"expected an attribute, $body path or literal, found {_describe(t)}", t)


def _describe(t: Token) -> str:
    if t.kind == "EOF":
        return "end of filter"
    return f"{t.value!r}"


# printer --------------------------------------------------------------------------------------------------------


def _const_text(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return quote_string(v)
    return repr(v) if isinstance(v, float) else str(v)


def _operand_text(o: Field | Const) -> str:
    return o.text() if isinstance(o, Field) else _const_text(o.value)


def to_text(node: Node, parent: str = "") -> str:
    if isinstance(node, BoolConst):
        return "true" if node.value else "false"
    if isinstance(node, Compare):
        return f"{_operand_text(node.left)} {node.op} {_operand_text(node.right)}"
    if isinstance(node, Func):
        return f"{node.name}({_operand_text(node.left)}, {_operand_text(node.right)})"
    text = f" {node.op} ".join(to_text(i, node.op) for i in node.items)
    return f"({text})" if node.op == "OR" and parent == "AND" else text  # AND binds tighter than OR


# evaluation -----------------------------------------------------------------------------------------------------

Pred = Callable[[Mapping[str, Any]], bool]
Getter = Callable[[Mapping[str, Any]], Any]


def _getter(o: Field | Const) -> Getter:
    if isinstance(o, Const):
        value = o.value
        return lambda n: value
    if o.name != "$body":
        name = o.name
        return lambda n: n.get(name, _ABSENT)
    path = o.path

    def body(n: Mapping[str, Any]) -> Any:
        return dict_path(n.get("data", _ABSENT), path, _ABSENT)

    return body


def _kind(v: Any) -> str:
    t = type(v)
    if t is int or t is float:
        return "number"
    return t.__name__


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is _ABSENT or b is _ABSENT:
        return False
    ka, kb = _kind(a), _kind(b)
    same = ka == kb
    if op == "=":
        return same and a == b
    if op == "!=":
        return not (same and a == b)
    if not same or ka not in ("number", "str"):
        return False
    return ordered(op, a, b)


_STRING_FUNCS: dict[str, Callable[[str, str], bool]] = {
    "STARTS_WITH": str.startswith,
    "ENDS_WITH": str.endswith,
    "CONTAINS": str.__contains__,
}


def _compile(node: Node) -> Pred:
    if isinstance(node, BoolConst):
        value = node.value
        return lambda n: value
    if isinstance(node, Compare):
        left, right, op = _getter(node.left), _getter(node.right), node.op
        return lambda n: _compare(op, left(n), right(n))
    if isinstance(node, Func):
        left, right, fn = _getter(node.left), _getter(node.right), _STRING_FUNCS[node.name]

        def func(n: Mapping[str, Any]) -> bool:
            a, b = left(n), right(n)
            return type(a) is str and type(b) is str and fn(a, b)

        return func
    items = tuple(_compile(i) for i in node.items)
    if node.op == "AND":
        return lambda n: all(p(n) for p in items)
    return lambda n: any(p(n) for p in items)


class RouteFilter(CompiledExpression):
    """A compiled ADT event route filter."""

    __slots__ = ("_pred",)
    compiler = "compile_route_filter"
    ast: Node

    def __init__(self, source: str, ast: Node) -> None:
        super().__init__(source, ast)
        self._pred = _compile(ast)

    def matches(self, notification: Mapping[str, Any]) -> bool:
        return self._pred(notification)

    def to_text(self) -> str:
        return to_text(self.ast)


def compile_route_filter(text: str) -> RouteFilter:
    """Parse and compile an ADT route filter; RouteFilterSyntaxError (a ValueError) with .position otherwise."""
    text = RouteFilter.require_text(text, "route filter")
    return RouteFilter(text, _Parser(text).parse())
