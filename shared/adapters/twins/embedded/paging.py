"""Continuation for listings and queries: the rest of a result is kept under an opaque token.

ADT hands out ``nextLink`` (lists) and ``continuationToken`` (query) and documents neither format; a token here
names a stored remainder, lives for ``ttl`` seconds and is refused afterwards (400 BadRequest, as ADT answers an
invalid continuation token — spec: Query_QueryTwins "BadRequest - The continuation token is invalid").
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from typing import Any, Final

from shared.adapters.twins.embedded.errors import bad_request

QUERY_PAGE: Final = 1_000  # Learn reference-service-limits: items returned in a single query page
LIST_PAGE: Final = 100  # our choice for list operations (ADT does not document theirs)


class Pages:
    def __init__(self, ttl: float = 600.0, capacity: int = 1_000) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._rest: OrderedDict[str, tuple[float, str, list[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, kind: str, items: list[Any], size: int) -> tuple[list[Any], str | None]:
        if len(items) <= size:
            return items, None
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._rest[token] = (time.monotonic() + self._ttl, kind, items[size:])
            while len(self._rest) > self._capacity:
                self._rest.popitem(last=False)
        return items[:size], token

    def next(self, kind: str, token: str, size: int) -> tuple[list[Any], str | None]:
        with self._lock:
            entry = self._rest.pop(token, None)
        if entry is None or entry[0] < time.monotonic() or entry[1] != kind:
            raise bad_request("BadRequest", "the continuation token is invalid or has expired")
        return self.first(kind, entry[2], size)
