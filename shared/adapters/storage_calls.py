"""Azure Storage calls from the adapters (tables, blobs): which failures mean "try again later", and creating the
table or container on first use.

Transient: throttling and timeouts (408, 429), service errors (5xx), 401/403 (a role assignment not yet effective),
and no answer at all. Anything else (400, 404, 409, 412) is an answer about the data, for the caller to handle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError

from shared.errors import Code, TransientError

T = TypeVar("T")


def transient_storage_error(exc: AzureError, what: str, service: str,
                            code: Code = Code.STATE_UNAVAILABLE) -> TransientError | None:
    """The TransientError to raise for ``exc``, or None when the caller must see ``exc`` itself."""
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        if status in (401, 403, 408, 429) or status >= 500:
            return TransientError(code, f"{what}: HTTP {status} from {service}")
        return None
    return TransientError(code, f"{what}: {service} unreachable: {exc}")


class CreateOnce:
    """Creates a table or container the first time it is needed (thread-safe); ``forget`` after it vanished."""

    def __init__(self, create: Callable[[], object], service: str) -> None:
        self._create = create
        self._service = service
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self, what: str) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                self._create()
            except ResourceExistsError:
                pass
            except AzureError as exc:
                raise TransientError(Code.STATE_UNAVAILABLE,
                                     f"{what}: cannot create the {self._service}: {exc}") from exc
            self._ready = True

    def forget(self) -> None:
        self._ready = False


def call_storage(target: CreateOnce, what: str, service: str, operation: Callable[[], T]) -> T:
    """One storage operation, for every storage adapter: the table or container created first, and the failures
    that mean "try again later" raised as TransientError (the broker redelivers); any other answer as it came."""
    target.ensure(what)
    try:
        return operation()
    except AzureError as exc:
        transient = transient_storage_error(exc, what, service)
        if transient is None:
            raise
        raise transient from exc
