"""Reading recorded event streams without holding them in memory: the file is memory-mapped and cut into its
top-level elements by shared/ingest/json_elements.py (arrays, JSON Lines, one event, pretty-printed, BOM), each
parsed on
its own; an element that is not JSON comes as ``Unparsable`` for the caller to quarantine, and the stream goes on.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

from shared.ingest.json_elements import Item, Unparsable, iter_elements

__all__ = ["Item", "Unparsable", "read_events"]


def read_events(path: str | Path) -> Iterator[Item | tuple[Unparsable, int]]:
    """Yield (event, size) pairs, or (Unparsable, size) for an element that is not JSON ('-' is not supported)."""
    with open(path, "rb") as stream:
        if stream.seek(0, 2) == 0:
            return
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            yield from iter_elements(buf)
