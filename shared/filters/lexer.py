"""What the three expression languages share — IoT Hub routing queries, ADT route filters and the ADT query language
(the embedded engine's, shared/adapters/twins/embedded/query.py): one tokenizer, told by a ``Lexicon`` what differs
between them; the syntax error with its position; string and number literals (the escapes of the Cosmos DB SQL
dialect all three come from); the cursor a recursive-descent parser walks its tokens with; and the small pieces of
evaluation and printing that are the same in each (ordering two values, walking JSON objects, quoting a string,
the compiled expression's text forms)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "CompiledExpression",
    "Lexicon",
    "QuerySyntaxError",
    "Token",
    "TokenCursor",
    "dict_path",
    "is_name_char",
    "is_name_start",
    "ordered",
    "quote_string",
    "scan_number",
    "scan_string",
    "tokenize",
]

# The escapes of Cosmos DB SQL's string literals (Learn: cosmos-db/nosql/query/constants), which ADT's query
# language, IoT Hub's and the route filters (docs/filters.md) take alike; any other escape is a syntax error.
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class QuerySyntaxError(ValueError):
    """An expression that does not parse. ``position`` is the 0-based character offset of the problem, ``reason``
    the message without it."""

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(f"{message} at position {position}")
        self.reason = message
        self.position = position
        self.text = text


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # STR NUM OP EOF, a punctuation character, or what the lexicon's word scanner names it
    value: Any
    pos: int  # where the token starts: the position every error about it names
    end: int


@dataclass(frozen=True, slots=True)
class Lexicon:
    """What differs between the languages' tokens.

    ``punct``: characters that are tokens of their own (kind = the character). ``ops``: operators, longest first
    (``<>`` is read as ``!=``). ``signs``: signs a number literal may carry (where ``-`` is not an operator).
    ``hex_numbers``: whether ``0x…`` literals exist. ``name_chars``: what a name may contain besides letters and
    digits (it starts with a letter, ``$``, ``_`` or one of ``name_starts``). ``word``: scans a name into a token
    instead (paths and keywords; ``name_chars`` is then unused). ``special``: tried first at every position; a
    token, or None to go on. ``error``: the language's syntax error type."""

    punct: str
    ops: tuple[str, ...]
    name_chars: str = ""
    signs: str = ""
    hex_numbers: bool = True
    name_starts: str = ""
    word: Callable[[str, int], Token] | None = None
    special: Callable[[str, int], Token | None] | None = None
    error: type[QuerySyntaxError] = QuerySyntaxError


def tokenize(text: str, lexicon: Lexicon) -> list[Token]:
    """The tokens of ``text``, the last one EOF; the lexicon's ``error`` (with the position) where it cannot."""
    try:
        return _tokens(text, lexicon)
    except QuerySyntaxError as exc:
        if isinstance(exc, lexicon.error):
            raise
        raise lexicon.error(exc.reason, exc.position, text) from None


def _tokens(text: str, lx: Lexicon) -> list[Token]:
    toks: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        tok = lx.special(text, i) if lx.special is not None else None
        if tok is not None:
            pass
        elif c in lx.punct:
            tok = Token(c, c, i, i + 1)
        elif text.startswith(lx.ops, i):
            op = next(o for o in lx.ops if text.startswith(o, i))
            tok = Token("OP", "!=" if op == "<>" else op, i, i + len(op))
        elif c in "'\"":
            value, end = scan_string(text, i)
            tok = Token("STR", value, i, end)
        elif _starts_number(text, i, lx.signs):
            sign = -1 if c == "-" else 1
            number, end = scan_number(text, i + 1 if c in lx.signs else i, hex_numbers=lx.hex_numbers)
            tok = Token("NUM", sign * number, i, end)
        elif is_name_start(c) or c in lx.name_starts:
            if lx.word is not None:
                tok = lx.word(text, i)
            else:
                end = i + 1
                while end < n and (text[end].isalnum() or text[end] in lx.name_chars):
                    end += 1
                tok = Token("NAME", text[i:end], i, end)
        else:
            raise lx.error(f"unexpected character {c!r}", i, text)
        toks.append(tok)
        i = tok.end
    toks.append(Token("EOF", None, n, n))
    return toks


def _starts_number(text: str, i: int, signs: str) -> bool:
    """A digit, or '.' and a digit, either after one of ``signs``."""
    j = i + 1 if text[i] in signs else i
    if text[j : j + 1] == ".":
        j += 1
    return text[j : j + 1].isdigit()


class TokenCursor:
    """A recursive-descent parser's position in its tokens (the last one is EOF), for the three languages'
    parsers. ``error`` builds the parser's own syntax error at a token's position."""

    error_type: ClassVar[type[QuerySyntaxError]] = QuerySyntaxError

    def __init__(self, text: str, toks: list[Token]) -> None:
        self.text = text
        self.toks = toks
        self.i = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, message: str, tok: Token | None = None) -> QuerySyntaxError:
        return self.error_type(message, (tok or self.peek()).pos, self.text)


def is_name_start(c: str) -> bool:
    return c == "$" or c == "_" or c.isalpha()


def is_name_char(c: str) -> bool:
    return c.isalnum() or c in "_-$"


def scan_string(text: str, i: int) -> tuple[str, int]:
    quote, start = text[i], i
    i += 1
    out: list[str] = []
    while True:
        if i >= len(text):
            raise QuerySyntaxError("unterminated string", start, text)
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= len(text):
                raise QuerySyntaxError("unterminated string", start, text)
            e = text[i + 1]
            if e == "u":
                hexdigits = text[i + 2 : i + 6]
                if len(hexdigits) != 4 or any(h not in "0123456789abcdefABCDEF" for h in hexdigits):
                    raise QuerySyntaxError("invalid \\u escape (need 4 hex digits)", i, text)
                out.append(chr(int(hexdigits, 16)))
                i += 6
                continue
            if e not in _ESCAPES:
                raise QuerySyntaxError(f"invalid escape \\{e}", i, text)
            out.append(_ESCAPES[e])
            i += 2
            continue
        out.append(c)
        i += 1


def scan_number(text: str, i: int, *, hex_numbers: bool = True) -> tuple[int | float, int]:
    start, n = i, len(text)
    if hex_numbers and text.startswith(("0x", "0X"), i):
        j = i + 2
        while j < n and text[j] in "0123456789abcdefABCDEF":
            j += 1
        if j == i + 2:
            raise QuerySyntaxError("hex literal needs digits after 0x", start, text)
        if j < n and is_name_char(text[j]):
            raise QuerySyntaxError("invalid hex literal", start, text)
        return int(text[i + 2 : j], 16), j
    j = i
    while j < n and text[j].isdigit():
        j += 1
    is_float = False
    if j < n and text[j] == ".":
        is_float = True
        j += 1
        while j < n and text[j].isdigit():
            j += 1
    if j < n and text[j] in "eE":
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        if k < n and text[k].isdigit():
            is_float = True
            j = k
            while j < n and text[j].isdigit():
                j += 1
    if j < n and (is_name_char(text[j]) and text[j] != "-"):
        raise QuerySyntaxError("invalid number literal", start, text)
    lexeme = text[start:j]
    return (float(lexeme) if is_float else int(lexeme)), j


def quote_string(s: str) -> str:
    """``s`` as a single-quoted literal that ``scan_string`` reads back to ``s``."""
    out = ["'"]
    for c in s:
        if c == "'" or c == "\\":
            out.append("\\" + c)
        elif c < " " or c == "\x7f":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append("'")
    return "".join(out)


_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def ordered(op: str, a: Any, b: Any) -> bool:
    """``a op b`` for an ordering operator (``< <= > >=``); the caller has checked that the two are comparable."""
    return bool(_ORDERINGS[op](a, b))


def dict_path(value: Any, path: Iterable[str], missing: Any) -> Any:
    """``value[k1][k2]…`` through JSON objects only: ``missing`` where a step is absent or not an object."""
    for key in path:
        if type(value) is not dict:
            return missing
        value = value.get(key, missing)
    return value


class CompiledExpression:
    """A parsed and compiled expression: its source text, its syntax tree, its canonical text (which parses back to
    an equivalent expression) and a repr naming the function that builds it."""

    __slots__ = ("ast", "source")
    compiler: ClassVar[str]

    def __init__(self, source: str, ast: Any) -> None:
        self.source = source
        self.ast = ast

    def to_text(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"{self.compiler}({self.to_text()!r})"

    @staticmethod
    def require_text(text: object, what: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"{what} must be a string, got {type(text).__name__}")
        return text
