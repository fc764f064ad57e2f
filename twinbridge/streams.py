"""Reading event streams without holding them in memory: a JSON array (streamed with ijson) or JSON Lines.

Each item comes with its size in bytes when it is known (JSON Lines), so the size guard sees what was received.
A line that is not JSON is yielded as ``Unparsable`` so the caller can quarantine it and go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson
import orjson


@dataclass(frozen=True, slots=True)
class Unparsable:
    text: str
    error: str
    line: int


Item = tuple[Any, int | None]


def read_events(path: str | Path) -> Iterator[Item | tuple[Unparsable, int]]:
    """Yield (event, size) pairs from a JSON array or JSON Lines file ('-' is not supported: give a file)."""
    with open(path, "rb") as stream:
        first = _first_significant_byte(stream)
        stream.seek(0)
        if first == b"[":
            yield from _array(stream)
        else:
            yield from _lines(stream)


def _first_significant_byte(stream: BinaryIO) -> bytes:
    while True:
        chunk = stream.read(1)
        if not chunk or not chunk.isspace():
            return chunk


def _array(stream: BinaryIO) -> Iterator[Item]:
    # use_float: numbers as float, as orjson and json.loads give (ijson's default would be Decimal).
    for event in ijson.items(stream, "item", use_float=True):
        yield event, None


def _lines(stream: BinaryIO) -> Iterator[Item | tuple[Unparsable, int]]:
    for number, line in enumerate(stream, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            yield orjson.loads(stripped), len(stripped)
        except orjson.JSONDecodeError as exc:
            text = stripped[:200].decode("utf-8", "replace")
            yield Unparsable(text, str(exc), number), len(stripped)
