"""IoT Hub message-routing queries: parse once, evaluate many times.

``compile_routing_query(text)`` parses a route condition into an AST, then compiles the AST into a tree of
closures; ``RoutingQuery.matches(telemetry, twin=None)`` evaluates it against the DeviceTelemetry ``data`` object as
Event Grid delivers it (``body``, ``properties``, ``systemProperties``). ``str(query)`` / ``to_text()`` print a
canonical form that parses back to an equivalent query. Syntax errors raise ``QuerySyntaxError`` with ``.position``
(0-based character offset, also in the message).

Documented rules (docs/azure-behaviour.md §3): only a result of exactly ``true`` routes (false, null, undefined,
strings, …
do not); an empty condition is ``true``; ``$body`` paths are evaluated only when the content type is
``application/json`` and the encoding UTF-8/16/32 (case-insensitive), otherwise they are undefined; ``$``-names
are system properties (looked up in system properties first, then application properties); bare names are
application properties with case-insensitive names; ``$twin.…`` reads the twin passed in (case-insensitive names);
``IS_DEFINED`` is true only for primitives; ``IN`` is rejected.

Choices where the documentation is silent (each is tested in ``tests/filters``):

* Typing follows the Cosmos DB SQL dialect the language comes from: comparisons between different types (or
  involving undefined) are undefined; ``<``/``>`` order numbers and strings only (``=``/``!=`` also compare
  booleans, null, and arrays/objects deeply); arithmetic needs numbers (``+`` does not concatenate: use CONCAT),
  division or modulo by zero is undefined, ``%`` truncates toward zero. ``AND``/``OR`` are three-valued
  (``false AND undefined`` is false, ``true OR undefined`` is true, anything else involving a non-boolean is
  undefined); ``NOT`` of a non-boolean is undefined.
* String comparison is case-sensitive and ordinal (use ``LOWER()`` to compare case-insensitively).
* Application properties arrive as strings: ``level > 5`` on ``"7"`` is undefined; write ``AS_NUMBER(level) > 5``.
* ``$body`` itself and ``$body[0]`` are unsupported ⇒ undefined. Paths inside the body are case-sensitive.
* The content type is compared on its media type (``application/json; charset=utf-8`` counts as JSON). A string
  body with a JSON content type is base64-decoded and decoded with the declared encoding (``utf-16``/``utf-32``
  honour a BOM, little-endian without one); a body that does not decode is undefined.
* System property names: ``$contentType``→``iothub-content-type``, ``$contentEncoding``→``iothub-content-encoding``,
  ``$connectionDeviceId``→``iothub-connection-device-id``, ``$connectionModuleId``→``iothub-connection-module-id``,
  ``$enqueuedTime``→``iothub-enqueuedtime``, ``$connectionAuthMethod``→``iothub-connection-auth-method``,
  ``$connectionDeviceGenerationId``→``iothub-connection-auth-generation-id``, ``$messageSource``→
  ``iothub-message-source``, ``$messageId``→``message-id``, ``$correlationId``→``correlation-id``,
  ``$userId``→``user-id``; any other ``$name`` is looked up as ``name``, ``iothub-name`` and ``$name`` in the
  system properties, then as ``$name`` in the application properties. All such lookups ignore case.
* Names may contain ``-`` (``$dt-dataschema``, ``iothub-…``), so subtraction needs spaces: ``a - b``.
* Keywords (``AND OR NOT true false null undefined``) and function names are case-insensitive. String escapes:
  ``\\'`` ``\\"`` ``\\\\`` ``\\/`` ``\\b`` ``\\f`` ``\\n`` ``\\r`` ``\\t`` ``\\uXXXX``. Numbers: decimal with optional
  fraction/exponent, or ``0x`` hex. Object literals are not supported (syntax error).
* Functions: numbers in, number out (``SQRT`` of a negative, ``POWER`` overflow ⇒ undefined); ``SUBSTRING(s,
  start, length)`` and ``INDEX_OF`` are 0-based (``INDEX_OF`` returns -1 when absent); ``LENGTH`` is for strings;
  ``CONCAT`` takes two or more strings; wrong types ⇒ undefined. ``IS_*`` always return a boolean.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shared.filters.lexer import (
    CompiledExpression,
    Lexicon,
    QuerySyntaxError,
    Token,
    TokenCursor,
    is_name_char,
    is_name_start,
    ordered,
    quote_string,
    tokenize,
)

__all__ = ["UNDEFINED", "QuerySyntaxError", "RoutingQuery", "compile_routing_query"]


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Final = _Undefined()

# ---------------------------------------------------------------------------------------------------------------
# lexer

_KEYWORDS = {"and", "or", "not", "true", "false", "null", "undefined", "in"}


def _not_alone(text: str, i: int) -> Token | None:
    if text[i] == "!" and not text.startswith("!=", i):
        raise QuerySyntaxError("unexpected '!' (did you mean '!=' or NOT?)", i, text)
    return None


def _word(text: str, i: int) -> Token:
    """A keyword (kind KW, lower-cased) or a path (kind PATH, a tuple of names and array indexes)."""
    path, end = _lex_path(text, i)
    if len(path) == 1 and isinstance(path[0], str) and path[0].lower() in _KEYWORDS:
        return Token("KW", path[0].lower(), i, end)
    return Token("PATH", tuple(path), i, end)


# kinds: NUM STR PATH KW OP ( ) [ ] , EOF; '-' is an operator, so number literals carry no sign
_LEXICON: Final = Lexicon(punct="()[],", ops=("<=", ">=", "!=", "<>", "=", "<", ">", "+", "-", "*", "/", "%"),
                          word=_word, special=_not_alone)


def _lex_path(text: str, i: int) -> tuple[list[str | int], int]:
    """name(.name | [digits])* — names may contain '-' and '$'."""
    n = len(text)
    parts: list[str | int] = []
    j = i
    while j < n and is_name_char(text[j]):
        j += 1
    parts.append(text[i:j])
    while j < n:
        if text[j] == "." and j + 1 < n and is_name_start(text[j + 1]):
            k = j + 1
            while k < n and is_name_char(text[k]):
                k += 1
            parts.append(text[j + 1 : k])
            j = k
        elif text[j] == ".":
            raise QuerySyntaxError("expected a property name after '.'", j + 1, text)
        elif text[j] == "[" and j + 1 < n and text[j + 1].isdigit():
            k = j + 1
            while k < n and text[k].isdigit():
                k += 1
            if k >= n or text[k] != "]":
                raise QuerySyntaxError("expected ']' after array index", k, text)
            parts.append(int(text[j + 1 : k]))
            j = k + 1
        else:
            break
    return parts, j


# ---------------------------------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any  # None, bool, int, float, str, UNDEFINED


@dataclass(frozen=True, slots=True)
class ArrayLiteral:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Path:
    parts: tuple[str | int, ...]  # first is the head name (e.g. "$body", "$twin", "$contentType", "level")


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "NOT" or "-"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # OR AND = != < > <= >= + - * / %
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # upper-case
    args: tuple[Node, ...]


Node = Literal | ArrayLiteral | Path | Unary | Binary | Call

_COMPARISONS = ("=", "!=", "<", ">", "<=", ">=")
_PRECEDENCE = {"OR": 1, "AND": 2, "NOT": 3, **dict.fromkeys(_COMPARISONS, 4), "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}

# name -> (min args, max args or None)
_FUNCTIONS: dict[str, tuple[int, int | None]] = {
    **{f: (1, 1) for f in ("ABS", "EXP", "SQUARE", "CEILING", "FLOOR", "SIGN", "SQRT")},
    "POWER": (2, 2),
    **{
        f: (1, 1)
        for f in (
            "AS_NUMBER",
            "IS_ARRAY",
            "IS_BOOL",
            "IS_DEFINED",
            "IS_NULL",
            "IS_NUMBER",
            "IS_OBJECT",
            "IS_PRIMITIVE",
            "IS_STRING",
            "LENGTH",
            "LOWER",
            "UPPER",
        )
    },
    "CONCAT": (2, None),
    "SUBSTRING": (3, 3),
    "INDEX_OF": (2, 2),
    "STARTSWITH": (2, 2),
    "ENDSWITH": (2, 2),
    "CONTAINS": (2, 2),
}

# ---------------------------------------------------------------------------------------------------------------
# parser (recursive descent, precedence climbing)


class _Parser(TokenCursor):
    def __init__(self, text: str) -> None:
        super().__init__(text, tokenize(text, _LEXICON))

    def expect(self, kind: str, what: str) -> Token:
        t = self.peek()
        if t.kind != kind:
            raise self.error(f"expected {what}, found {_describe(t)}")
        return self.take()

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            return Literal(True)
        node = self.expr(1)
        t = self.peek()
        if t.kind != "EOF":
            if t.kind == "KW" and t.value == "in":
                raise self.error("IN is not supported in IoT Hub routing queries (use OR of comparisons)")
            raise self.error(f"unexpected {_describe(t)}")
        return node

    def binary_op(self) -> str | None:
        t = self.peek()
        if t.kind == "KW" and t.value in ("and", "or"):
            return str(t.value).upper()
        if t.kind == "OP":
            return str(t.value)
        return None

    def expr(self, min_prec: int) -> Node:
        left = self.unary(min_prec)
        while True:
            op = self.binary_op()
            if op is None:
                t = self.peek()
                if t.kind == "KW" and t.value == "in":
                    raise self.error("IN is not supported in IoT Hub routing queries (use OR of comparisons)")
                return left
            prec = _PRECEDENCE[op]
            if prec < min_prec:
                return left
            self.take()
            right = self.expr(prec + 1)
            if op in _COMPARISONS and self.binary_op() in _COMPARISONS:
                raise self.error("comparisons cannot be chained; use AND or parentheses")
            left = Binary(op, left, right)

    def unary(self, min_prec: int) -> Node:
        t = self.peek()
        if t.kind == "KW" and t.value == "not":
            self.take()
            return Unary("NOT", self.expr(max(min_prec, _PRECEDENCE["NOT"])))
        if t.kind == "OP" and t.value == "-":
            self.take()
            return Unary("-", self.unary(7))
        if t.kind == "OP" and t.value == "+":
            self.take()
            return self.unary(7)
        return self.primary()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "NUM" or t.kind == "STR":
            return Literal(t.value)
        if t.kind == "KW":
            consts = {"true": True, "false": False, "null": None, "undefined": UNDEFINED}
            if t.value in consts:
                return Literal(consts[t.value])
            if t.value == "in":
                raise self.error("IN is not supported in IoT Hub routing queries (use OR of comparisons)", t)
            raise self.error(f"unexpected keyword {str(t.value).upper()}", t)
        if t.kind == "(":
            node = self.expr(1)
            self.expect(")", "')'")
            return node
        if t.kind == "[":
            return ArrayLiteral(self.expr_list("]"))
        if t.kind == "PATH":
            parts: tuple[str | int, ...] = t.value
            if self.peek().kind == "(":
                return self.call(t, parts)
            head = str(parts[0])
            if head.lower() in ("$body", "$twin"):
                parts = (head.lower(), *parts[1:])
            return Path(parts)
        if t.kind == "EOF":
            raise self.error("unexpected end of query", t)
        raise self.error(f"unexpected {_describe(t)}", t)

    def call(self, name_tok: Token, parts: tuple[str | int, ...]) -> Node:
        name = str(parts[0]).upper()
        if len(parts) != 1 or name not in _FUNCTIONS:
            raise self.error(f"unknown function {'.'.join(map(str, parts))}", name_tok)
        self.take()  # (
        args = self.expr_list(")")
        lo, hi = _FUNCTIONS[name]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo}-{hi}")
            raise self.error(f"{name} takes {want} argument(s), got {len(args)}", name_tok)
        return Call(name, args)

    def expr_list(self, close: str) -> tuple[Node, ...]:
        """Comma-separated expressions up to ``close`` (taken), after the opening bracket; possibly none."""
        items: list[Node] = []
        if self.peek().kind != close:
            items.append(self.expr(1))
            while self.peek().kind == ",":
                self.take()
                items.append(self.expr(1))
        self.expect(close, f"',' or '{close}'")
        return tuple(items)


def _describe(t: Token) -> str:
    if t.kind == "EOF":
        return "end of query"
    if t.kind == "KW":
        return f"keyword {str(t.value).upper()}"
    if t.kind == "PATH":
        return f"name {_path_text(t.value)!r}"
    if t.kind == "STR":
        return "string literal"
    if t.kind == "NUM":
        return f"number {t.value}"
    return f"{t.value!r}"


# ---------------------------------------------------------------------------------------------------------------
# printer


def _path_text(parts: Sequence[str | int]) -> str:
    out = str(parts[0])
    for p in parts[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _literal_text(v: Any) -> str:
    if v is UNDEFINED:
        return "undefined"
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return quote_string(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot print non-finite number {v}")
        return repr(v)
    return str(v)


def to_text(node: Node, parent_prec: int = 0) -> str:
    """Canonical text: upper-case keywords/functions, single-quoted strings, minimal parentheses."""
    if isinstance(node, Literal):
        return _literal_text(node.value)
    if isinstance(node, ArrayLiteral):
        return "[" + ", ".join(to_text(i) for i in node.items) + "]"
    if isinstance(node, Path):
        return _path_text(node.parts)
    if isinstance(node, Call):
        return f"{node.name}(" + ", ".join(to_text(a) for a in node.args) + ")"
    if isinstance(node, Unary):
        if node.op == "NOT":
            text = "NOT " + to_text(node.operand, _PRECEDENCE["NOT"])
            return f"({text})" if parent_prec > _PRECEDENCE["NOT"] else text
        inner = to_text(node.operand, 7)
        return "-" + (inner if not inner.startswith("-") else f"({inner})")
    prec = _PRECEDENCE[node.op]
    # left-associative: the right operand needs parentheses at equal precedence; comparisons never chain
    left = to_text(node.left, prec + 1 if node.op in _COMPARISONS else prec)
    right = to_text(node.right, prec + 1)
    text = f"{left} {node.op} {right}"
    return f"({text})" if prec < parent_prec else text


# ---------------------------------------------------------------------------------------------------------------
# evaluation: AST -> closures over (telemetry, twin, body)

Fn = Callable[[Mapping[str, Any], Any, Any], Any]

_SYSTEM_PROPERTIES = {
    "$contenttype": "iothub-content-type",
    "$contentencoding": "iothub-content-encoding",
    "$connectiondeviceid": "iothub-connection-device-id",
    "$connectionmoduleid": "iothub-connection-module-id",
    "$enqueuedtime": "iothub-enqueuedtime",
    "$connectionauthmethod": "iothub-connection-auth-method",
    "$connectiondevicegenerationid": "iothub-connection-auth-generation-id",
    "$messagesource": "iothub-message-source",
    "$messageid": "message-id",
    "$correlationid": "correlation-id",
    "$userid": "user-id",
}
_JSON_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "utf-32": "utf-32"}


def _ci_get(m: Any, key: str) -> Any:
    """Case-insensitive lookup of ``key`` (given lower-cased) in a mapping; UNDEFINED when absent."""
    if not isinstance(m, Mapping):
        return UNDEFINED
    v = m.get(key, UNDEFINED)
    if v is not UNDEFINED:
        return v
    for k, val in m.items():
        if isinstance(k, str) and k.lower() == key:
            return val
    return UNDEFINED


def message_body(telemetry: Mapping[str, Any]) -> Any:
    """The JSON body routing may query, or UNDEFINED (content type/encoding not JSON, or undecodable)."""
    sp = telemetry.get("systemProperties")
    ct = _ci_get(sp, "iothub-content-type")
    enc = _ci_get(sp, "iothub-content-encoding")
    if not isinstance(ct, str) or ct.split(";", 1)[0].strip().lower() != "application/json":
        return UNDEFINED
    codec = _JSON_ENCODINGS.get(enc.strip().lower()) if isinstance(enc, str) else None
    if codec is None:
        return UNDEFINED
    body = telemetry.get("body", UNDEFINED)
    if isinstance(body, str):
        try:
            raw = base64.b64decode(body, validate=True)
            return json.loads(raw.decode(codec))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return UNDEFINED
    return body


def _step(v: Any, part: str | int, ci: bool) -> Any:
    if isinstance(part, int):
        return v[part] if type(v) is list and part < len(v) else UNDEFINED
    if type(v) is not dict:
        return UNDEFINED
    if ci:
        return _ci_get(v, part.lower())
    return v.get(part, UNDEFINED)


def _walk(v: Any, rest: tuple[str | int, ...], ci: bool) -> Any:
    for p in rest:
        v = _step(v, p, ci)
        if v is UNDEFINED:
            return v
    return v


def _compile_path(parts: tuple[str | int, ...]) -> Fn:
    head = str(parts[0])
    rest = parts[1:]
    low = head.lower()
    if low == "$body":
        if not rest or isinstance(rest[0], int):
            return lambda tel, twin, body: UNDEFINED  # whole-body queries are unsupported

        def body_path(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
            return _walk(body, rest, False)

        return body_path
    if low == "$twin":

        def twin_path(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
            return UNDEFINED if twin is None else _walk(twin, rest, True)

        return twin_path
    if low.startswith("$"):
        candidates = tuple(
            dict.fromkeys(c for c in (_SYSTEM_PROPERTIES.get(low), low[1:], "iothub-" + low[1:], low) if c)
        )

        def system(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
            sp = tel.get("systemProperties")
            for c in candidates:
                v = _ci_get(sp, c)
                if v is not UNDEFINED:
                    return _walk(v, rest, True)
            return _walk(_ci_get(tel.get("properties"), low), rest, True)

        return system

    def app(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
        return _walk(_ci_get(tel.get("properties"), low), rest, True)

    return app


def _is_number(v: Any) -> bool:
    t = type(v)
    return (t is int or t is float) and v == v


def _strict_equal(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if ta is not tb:
        return False
    if ta is list:
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    t = type(v)
    if t is bool:
        return "bool"
    if t is int or t is float:
        return "number"
    if t is str:
        return "string"
    if t is list:
        return "array"
    if t is dict:
        return "object"
    return "undefined"


def _compare(op: str, a: Any, b: Any) -> Any:
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    ka, kb = _kind(a), _kind(b)
    if ka != kb or ka == "undefined":
        return UNDEFINED
    if op == "=":
        return _strict_equal(a, b)
    if op == "!=":
        return not _strict_equal(a, b)
    if ka not in ("number", "string") or (ka == "number" and (a != a or b != b)):
        return UNDEFINED
    return ordered(op, a, b)


def _as_num(v: float) -> Any:
    return v if math.isfinite(v) else UNDEFINED


def _arith(op: str, a: Any, b: Any) -> Any:
    if not (_is_number(a) and _is_number(b)):
        return UNDEFINED
    try:
        if op == "+":
            return _as_num(a + b)
        if op == "-":
            return _as_num(a - b)
        if op == "*":
            return _as_num(a * b)
        if b == 0:
            return UNDEFINED
        if op == "/":
            return _as_num(a / b)
        if type(a) is int and type(b) is int:
            r = abs(a) % abs(b)
            return -r if a < 0 else r
        return _as_num(math.fmod(a, b))
    except OverflowError:
        return UNDEFINED


def _num_fn(f: Callable[[Any], Any]) -> Callable[[Sequence[Any]], Any]:
    def apply(args: Sequence[Any]) -> Any:
        (x,) = args
        if not _is_number(x):
            return UNDEFINED
        try:
            r = f(x)
        except (ValueError, OverflowError):
            return UNDEFINED
        return r if (type(r) is int or (type(r) is float and math.isfinite(r))) else UNDEFINED

    return apply


def _power(args: Sequence[Any]) -> Any:
    x, y = args
    if not (_is_number(x) and _is_number(y)):
        return UNDEFINED
    try:
        r = math.pow(x, y)
    except (ValueError, OverflowError, ZeroDivisionError):
        return UNDEFINED
    return r if math.isfinite(r) else UNDEFINED


def _as_number(args: Sequence[Any]) -> Any:
    (x,) = args
    if _is_number(x):
        return x
    if type(x) is str:
        try:
            v = json.loads(x.strip())
        except ValueError:
            return UNDEFINED
        return v if _is_number(v) and math.isfinite(v) else UNDEFINED
    return UNDEFINED


def _strings(n: int | None, f: Callable[..., Any]) -> Callable[[Sequence[Any]], Any]:
    def apply(args: Sequence[Any]) -> Any:
        if any(type(a) is not str for a in (args if n is None else args[:n])):
            return UNDEFINED
        return f(*args)

    return apply


def _substring(args: Sequence[Any]) -> Any:
    s, start, length = args
    if type(s) is not str or not (_is_number(start) and _is_number(length)):
        return UNDEFINED
    if start != int(start) or length != int(length):
        return UNDEFINED
    start, length = int(start), int(length)
    if start < 0 or length < 0:
        return ""
    return s[start : start + length]


_IMPLS: dict[str, Callable[[Sequence[Any]], Any]] = {
    "ABS": _num_fn(abs),
    "EXP": _num_fn(math.exp),
    "SQUARE": _num_fn(lambda x: x * x),
    "CEILING": _num_fn(math.ceil),
    "FLOOR": _num_fn(math.floor),
    "SIGN": _num_fn(lambda x: (x > 0) - (x < 0)),
    "SQRT": _num_fn(math.sqrt),
    "POWER": _power,
    "AS_NUMBER": _as_number,
    "IS_ARRAY": lambda a: type(a[0]) is list,
    "IS_BOOL": lambda a: type(a[0]) is bool,
    "IS_DEFINED": lambda a: _kind(a[0]) in ("null", "bool", "number", "string"),
    "IS_NULL": lambda a: a[0] is None,
    "IS_NUMBER": lambda a: _is_number(a[0]),
    "IS_OBJECT": lambda a: type(a[0]) is dict,
    "IS_PRIMITIVE": lambda a: _kind(a[0]) in ("null", "bool", "number", "string"),
    "IS_STRING": lambda a: type(a[0]) is str,
    "CONCAT": _strings(None, lambda *a: "".join(a)),
    "LENGTH": _strings(1, len),
    "LOWER": _strings(1, str.lower),
    "UPPER": _strings(1, str.upper),
    "SUBSTRING": _substring,
    "INDEX_OF": _strings(2, str.find),
    "STARTSWITH": _strings(2, str.startswith),
    "ENDSWITH": _strings(2, str.endswith),
    "CONTAINS": _strings(2, str.__contains__),
}


def _compile(node: Node) -> Fn:
    if isinstance(node, Literal):
        value = node.value
        return lambda tel, twin, body: value
    if isinstance(node, ArrayLiteral):
        items = tuple(_compile(i) for i in node.items)

        def array(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
            values = [f(tel, twin, body) for f in items]
            return UNDEFINED if any(v is UNDEFINED for v in values) else values

        return array
    if isinstance(node, Path):
        return _compile_path(node.parts)
    if isinstance(node, Call):
        args = tuple(_compile(a) for a in node.args)
        impl = _IMPLS[node.name]

        def call(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
            return impl([f(tel, twin, body) for f in args])

        return call
    if isinstance(node, Unary):
        inner = _compile(node.operand)
        if node.op == "NOT":

            def not_(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
                v = inner(tel, twin, body)
                return (not v) if type(v) is bool else UNDEFINED

            return not_

        def neg(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
            v = inner(tel, twin, body)
            return -v if _is_number(v) else UNDEFINED

        return neg
    left, right, op = _compile(node.left), _compile(node.right), node.op
    if op in ("AND", "OR"):
        # three-valued: the deciding value (false for AND, true for OR) wins from either side, whatever the other;
        # two of the other boolean give it; anything else is undefined
        decides = op == "OR"

        def junction(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
            a = left(tel, twin, body)
            if a is decides:
                return decides
            b = right(tel, twin, body)
            if b is decides:
                return decides
            return (not decides) if (a is (not decides) and b is (not decides)) else UNDEFINED

        return junction
    if op in _COMPARISONS:

        def cmp(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
            return _compare(op, left(tel, twin, body), right(tel, twin, body))

        return cmp

    def arith(tel: Mapping[str, Any], twin: Any, body: Any) -> Any:
        return _arith(op, left(tel, twin, body), right(tel, twin, body))

    return arith


def _uses_body(node: Node) -> bool:
    if isinstance(node, Path):
        return node.parts[0] == "$body"
    if isinstance(node, ArrayLiteral | Call):
        return any(_uses_body(c) for c in (node.items if isinstance(node, ArrayLiteral) else node.args))
    if isinstance(node, Unary):
        return _uses_body(node.operand)
    if isinstance(node, Binary):
        return _uses_body(node.left) or _uses_body(node.right)
    return False


class RoutingQuery(CompiledExpression):
    """A compiled IoT Hub routing query."""

    __slots__ = ("_fn", "_uses_body")
    compiler = "compile_routing_query"
    ast: Node

    def __init__(self, source: str, ast: Node) -> None:
        super().__init__(source, ast)
        self._fn = _compile(ast)
        self._uses_body = _uses_body(ast)

    def evaluate(self, telemetry: Mapping[str, Any], twin: Mapping[str, Any] | None = None) -> Any:
        """The raw value of the condition (True, False, None, UNDEFINED, or any other value)."""
        body = message_body(telemetry) if self._uses_body else UNDEFINED
        return self._fn(telemetry, twin, body)

    def matches(self, telemetry: Mapping[str, Any], twin: Mapping[str, Any] | None = None) -> bool:
        """True only when the condition evaluates to exactly ``true`` (the message would be routed)."""
        return self.evaluate(telemetry, twin) is True

    def to_text(self) -> str:
        return to_text(self.ast)


def compile_routing_query(text: str) -> RoutingQuery:
    """Parse and compile a route condition. Raises QuerySyntaxError (with .position) when it does not parse."""
    text = RoutingQuery.require_text(text, "routing query")
    return RoutingQuery(text, _Parser(text).parse())
