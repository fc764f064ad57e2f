"""Signing keys for the webhook's bearer-token check, fetched from a JWKS URL and cached.

Entra publishes its keys at ``https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys``. Keys rotate, so an
unknown ``kid`` triggers one refresh, at most once per ``min_refresh_seconds`` (a flood of forged kids cannot turn
into a flood of fetches).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import requests


class JwksKeys:
    def __init__(self, url: str, *, ttl_seconds: float = 3600, min_refresh_seconds: float = 300,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.ttl = ttl_seconds
        self.min_refresh = min_refresh_seconds
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self, kid: str) -> Any:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > self.ttl
            may_refresh = self._fetched_at is None or now - self._fetched_at > self.min_refresh
            if stale or (kid not in self._keys and may_refresh):
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        response = requests.get(self.url, timeout=10)
        response.raise_for_status()
        key_set = jwt.PyJWKSet.from_dict(response.json())
        self._keys = {k.key_id: k.key for k in key_set.keys if k.key_id}
        self._fetched_at = now
