"""What the two expression languages share (IoT Hub routing queries, ADT route filters): the syntax error with its
position, string and number literals, names, and the cursor a recursive-descent parser walks its tokens with."""

from __future__ import annotations

from typing import ClassVar, Generic, Protocol, TypeVar

__all__ = ["QuerySyntaxError", "TokenCursor", "is_name_char", "is_name_start", "scan_number", "scan_string"]

_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class QuerySyntaxError(ValueError):
    """A routing query that does not parse. ``position`` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position
        self.text = text


class _Positioned(Protocol):
    @property
    def pos(self) -> int: ...


TokenT = TypeVar("TokenT", bound=_Positioned)


class TokenCursor(Generic[TokenT]):
    """A recursive-descent parser's position in its tokens (the last one is EOF), for the routing query's parser and
    the route filter's. ``error`` builds the parser's own syntax error at a token's position."""

    error_type: ClassVar[type[QuerySyntaxError]] = QuerySyntaxError

    def __init__(self, text: str, toks: list[TokenT]) -> None:
        self.text = text
        self.toks = toks
        self.i = 0

    def peek(self) -> TokenT:
        return self.toks[self.i]

    def take(self) -> TokenT:
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, message: str, tok: TokenT | None = None) -> QuerySyntaxError:
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


def scan_number(text: str, i: int) -> tuple[int | float, int]:
    start, n = i, len(text)
    if text.startswith(("0x", "0X"), i):
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
