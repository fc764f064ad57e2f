"""Cutting JSON text into its top-level elements and parsing each on its own, so one bad element never takes the
others down: replay's files (twinbridge/streams.py) and a webhook body orjson refuses as a whole
(shared/doors/webhook.py).

Accepted: a JSON array (compact or pretty-printed), JSON Lines, one object (pretty-printed or not), several objects
one after the other; with or without a UTF-8 byte order mark. A small scanner that only tracks brackets and strings
finds each element's end; an element that is not JSON (bad syntax, invalid UTF-8, nesting too deep, larger than
``MAX_ELEMENT_BYTES``) is yielded as ``Unparsable``, which intake quarantines as MALFORMED_JSON, and the rest goes on.

Elements are parsed with orjson; what orjson refuses but Python's json reads (NaN, Infinity, lone-surrogate
escapes) is read with json, so that the pipeline refuses it with the same code and path as on the Event Grid trigger
door (UNSUPPORTED_VALUE), not as unreadable text. Likewise an integer beyond 64 bits, which orjson reads as a
rounded float without a word (``loads``). Each element comes with its size in bytes (the size guard sees what was
in the file).
"""

from __future__ import annotations

import json
import mmap
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

BOM = b"\xef\xbb\xbf"
MAX_ELEMENT_BYTES = 16 * 1024 * 1024  # far above Event Grid's 1 MB per event: bigger is not an event, skipped
_STRUCTURAL = re.compile(rb'["{}\[\],]')
_STRING_END = re.compile(rb'["\\]')
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
_FAST_TRIES = 32
_ELEMENT_END = re.compile(rb"[}\]](?=[ \t\r\n]*[,\]])")  # a closing bracket followed by ',' or ']'


@dataclass(frozen=True, slots=True)
class Unparsable:
    """An element that is not JSON: its first 200 bytes as text, why, and the line it starts on."""

    text: str
    error: str
    line: int


Item = tuple[Any, int | None]
# Yields items; returns the position in the file where the caller goes on.
_Elements = Generator[Item | tuple[Unparsable, int], None, int]


# An integer orjson cannot hold (above 2**64 - 1, below -2**63) has 19 or more digits, right after ':', '[', ',',
# white space or '-'. Found by mapping digits to '0' and those to ':' and looking for ":" + 19 zeros: two passes
# in C (a regular expression took 10 times orjson's own time on a 320 KB body; this about half of it). A match
# inside a string (" 1234567890123456789") only costs a second, exact read.
_PRECEDERS = b"[, \t\r\n-:"
_DIGIT_RUNS = bytes.maketrans(b"0123456789" + _PRECEDERS, b"0" * 10 + b":" * len(_PRECEDERS))
_LONG_NUMBER = b":" + b"0" * 19


def _may_hold_a_long_integer(raw: bytes) -> bool:
    mapped = raw.translate(_DIGIT_RUNS)
    return _LONG_NUMBER in mapped or mapped.startswith(_LONG_NUMBER[1:])


def loads(raw: bytes) -> Any:
    """``orjson.loads``, except that integers beyond 64 bits stay exact integers, as Python's json (and so the
    Functions bindings, e.g. the Event Grid trigger's) reads them. orjson turns them into floats silently: a body
    value 2**64 was written to a twin as 1.8446744073709552e+19 by the webhook, while the trigger door quarantined
    it (UNSUPPORTED_VALUE) — now every door gives the pipeline the same value, and the same code and path.
    Raises ``orjson.JSONDecodeError`` for what orjson refuses, as ``orjson.loads``."""
    value = orjson.loads(raw)
    if _may_hold_a_long_integer(raw):
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            # Deeper than Python's parser goes: what orjson read (the guard refuses that depth on its own).
            return value
    return value


def iter_elements(buf: bytes | mmap.mmap) -> Iterator[Item | tuple[Unparsable, int]]:
    """(value, size) for each top-level element of ``buf``, or (Unparsable, size) for one that is not JSON."""
    if len(buf) == 0:
        return iter(())
    return _Scanner(buf).elements()


def parse_element(raw: bytes) -> Any:
    """One element's value; ValueError saying why when it is not JSON."""
    try:
        return loads(raw)
    except orjson.JSONDecodeError as exc:
        first = str(exc)
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text)  # NaN, Infinity, "\ud800": the pipeline gives them their code and path
    except (ValueError, RecursionError):
        raise ValueError(first) from None


class _Scanner:
    def __init__(self, buf: bytes | mmap.mmap) -> None:
        self.buf = buf
        self.size = len(buf)
        self._line_pos = 0
        self._line_no = 1

    def line_of(self, pos: int) -> int:
        # Positions only move forward: count the newlines since the last call.
        if pos >= self._line_pos:
            self._line_no += self.buf[self._line_pos:pos].count(b"\n")
            self._line_pos = pos
        return self._line_no

    def skip_space(self, pos: int) -> int:
        found = _NOT_SPACE.search(self.buf, pos)
        return self.size if found is None else found.start()

    def elements(self) -> Iterator[Item | tuple[Unparsable, int]]:
        pos = len(BOM) if self.buf[:3] == BOM else 0
        while True:
            pos = self.skip_space(pos)
            if pos >= self.size:
                return
            if self.buf[pos:pos + 1] == b"[":
                pos = yield from self._array(pos + 1)
            else:
                pos = yield from self._value(pos)

    def _array(self, pos: int) -> _Elements:
        """The elements of a top-level array from just after its '['; the position after its ']'."""
        while True:
            start = self.skip_space(pos)
            if start >= self.size:
                yield self._unparsable(start, start, "the file ends inside the array (no closing ']')")
                return start
            if self.buf[start:start + 1] == b"]":
                return start + 1
            fast = self._fast(start, in_array=True)
            if fast is not None:
                after = self.skip_space(fast[1])
                follower = self.buf[after:after + 1]
                if follower in (b",", b"]"):
                    yield fast[0], fast[1] - start
                    if follower == b"]":
                        return after + 1
                    pos = after + 1
                    continue
            end, closer = self._scan(start, in_array=True)
            raw = bytes(self.buf[start:end]).strip() if end - start <= MAX_ELEMENT_BYTES else None
            if raw is None:
                yield self._unparsable(start, end, f"element larger than {MAX_ELEMENT_BYTES} bytes: skipped")
            elif not raw:
                yield self._unparsable(start, end, "empty array element (two commas, or one before ']')")
            else:
                yield self._parsed(raw, start)
            if closer == b"]":
                return end + 1
            if closer is None:
                yield self._unparsable(end, end, "the file ends inside the array (no closing ']')")
                return end
            pos = end + 1  # after the comma

    def _value(self, start: int) -> _Elements:
        """One top-level value (JSON Lines, a lone or pretty-printed object); the position after it."""
        lead = self.buf[start:start + 1]
        fast = self._fast(start, in_array=False)
        if fast is not None:
            yield fast[0], fast[1] - start
            return fast[1]
        if lead in (b"{", b"["):
            end, _ = self._scan(start, in_array=False)
        else:  # a scalar or garbage: up to the end of its line
            newline = self.buf.find(b"\n", start)
            end = self.size if newline < 0 else newline
        line_end = self.buf.find(b"\n", start)
        line_end = self.size if line_end < 0 else line_end
        if end - start > MAX_ELEMENT_BYTES:
            yield self._unparsable(start, line_end, f"value larger than {MAX_ELEMENT_BYTES} bytes")
            return line_end + 1
        raw = bytes(self.buf[start:end]).strip()
        try:
            value = parse_element(raw)
        except ValueError as exc:
            if end > line_end:
                # A broken line in JSON Lines can leave a bracket open and swallow the lines after it: only this
                # line is bad; the next one starts afresh.
                yield self._unparsable(start, line_end, str(exc))
                return line_end + 1
            yield self._unparsable(start, end, str(exc))
            return end
        yield value, len(raw)
        return end

    def _fast(self, start: int, *, in_array: bool) -> tuple[Any, int] | None:
        """The common case, cheaply: (value, end) of a well-formed object or array starting at ``start``. The first
        prefix up to a closing bracket that orjson reads is the whole value (a prefix that stops at an inner bracket
        or inside a string is not valid JSON), so a few C-speed attempts replace a scan in Python: the rest of the
        line first (JSON Lines), then, in an array, each bracket followed by ',' or ']'. None when none of the first
        ``_FAST_TRIES`` reads: the scanner decides, slowly and exactly."""
        closer = {b"{": b"}", b"[": b"]"}.get(self.buf[start:start + 1])
        if closer is None:
            return None
        if not in_array:
            newline = self.buf.find(b"\n", start)
            end = self.size if newline < 0 else newline
            if end - start < MAX_ELEMENT_BYTES:
                line = self.buf[start:end].rstrip()
                if line.endswith(closer):
                    try:
                        return loads(line), start + len(line)
                    except orjson.JSONDecodeError:
                        pass
            return None
        pos = start
        for _ in range(_FAST_TRIES):
            found = _ELEMENT_END.search(self.buf, pos)
            if found is None or found.start() - start >= MAX_ELEMENT_BYTES:
                return None
            candidate = found.start()
            if self.buf[candidate:candidate + 1] == closer:
                try:
                    return loads(self.buf[start:candidate + 1]), candidate + 1
                except orjson.JSONDecodeError:
                    pass
            pos = candidate + 1
        return None

    def _scan(self, pos: int, *, in_array: bool) -> tuple[int, bytes | None]:
        """Where the element starting at ``pos`` ends, and what ends it: in an array the ',' or ']' at its level
        (its position), else the bracket closing the value that starts at ``pos`` (the position after it); None
        when the file ends first (or, outside an array, the value grows past ``MAX_ELEMENT_BYTES``)."""
        buf, depth = self.buf, 0
        limit = self.size if in_array else min(self.size, pos + MAX_ELEMENT_BYTES + 1)
        while True:
            found = _STRUCTURAL.search(buf, pos, limit)
            if found is None:
                return limit, None
            at = found.start()
            char = buf[at:at + 1]
            if char == b'"':
                pos = self._string_end(at + 1, limit)
                continue
            if char in (b"{", b"["):
                depth += 1
            elif char in (b"}", b"]"):
                if depth == 0:
                    return (at, char) if in_array else (at + 1, char)
                depth -= 1
                if depth == 0 and not in_array:
                    return at + 1, char
            elif char == b"," and depth == 0 and in_array:
                return at, char
            pos = at + 1

    def _string_end(self, pos: int, limit: int) -> int:
        while True:
            found = _STRING_END.search(self.buf, pos, limit)
            if found is None:
                return limit
            if self.buf[found.start():found.start() + 1] == b"\\":
                pos = found.start() + 2
                continue
            return found.start() + 1

    def _parsed(self, raw: bytes, start: int) -> Item | tuple[Unparsable, int]:
        try:
            return parse_element(raw), len(raw)
        except ValueError as exc:
            return self._unparsable(start, start + len(raw), str(exc))

    def _unparsable(self, start: int, end: int, error: str) -> tuple[Unparsable, int]:
        text = bytes(self.buf[start:min(end, start + 200)]).decode("utf-8", "replace")
        return Unparsable(text, error, self.line_of(start)), max(0, end - start)
