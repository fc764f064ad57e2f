"""The process-wide app the doors share: built on first use from the environment, replaceable in tests."""

from __future__ import annotations

import threading

from shared.wiring import App, build_app

_app: App | None = None
_lock = threading.Lock()


def current_app() -> App:
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                _app = build_app()
    return _app


def use_app(app: App | None) -> None:
    """Install ``app`` (tests, the local host) or forget the current one (None: rebuild on next use)."""
    global _app
    with _lock:
        _app = app
