"""Azure Storage calls from the adapters (tables, blobs): which failures mean "try again later", and creating the
table or container on first use.

Transient: throttling and timeouts (408, 429), service errors (5xx), 401/403 (a role assignment not yet effective),
and no answer at all. Anything else (400, 404, 409, 412) is an answer about the data, for the caller to handle.

Every storage client the app builds gets ``client_options(...)``: its transport (``DeadlineTransport``) shares the
invocation's deadline (shared/twins/deadline.py). Each attempt's connection and read timeouts are cut to the time left,
the retry policies' back-off sleeps too, and an attempt that would start with no time left fails at once — so a
store that accepts connections and never answers costs one budget, not azure-core's "read timeout × attempts"
(issue 15 §4 measured 42.5 s for the Table client and 163 s for Blob's 15 s-based exponential back-off). Outside
an invocation (the CLI) the configured timeouts apply unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport

from shared.errors import Code, TransientError
from shared.twins import deadline

T = TypeVar("T")


# Below this, an attempt is not worth starting: it could not even connect.
MIN_ATTEMPT_SECONDS = 0.05


class DeadlineTransport(RequestsTransport):  # type: ignore[misc]
    """azure-core's requests transport, bounded by the invocation's deadline (see the module docstring)."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        left = deadline.remaining()
        if left is not None:
            if left < MIN_ATTEMPT_SECONDS:
                raise ServiceRequestError("the invocation's time budget is spent: storage call not attempted")
            config = self.connection_config
            for key, configured in (("connection_timeout", config.timeout), ("read_timeout", config.read_timeout)):
                given = kwargs.get(key)
                kwargs[key] = min(float(given if given is not None else configured), left)
        return super().send(request, **kwargs)

    def sleep(self, duration: float) -> None:
        super().sleep(_within_deadline(duration))


def _within_deadline(duration: float) -> float:
    """A back-off sleep cut to the invocation's time left (unchanged outside an invocation)."""
    left = deadline.remaining()
    return duration if left is None else min(duration, max(0.0, left))


def _blob_retry(settings: dict[str, Any]) -> Any:
    """Blob's own retry policy (azure-storage-blob ignores azure-core's ``retry_backoff_*``: its default waits 15 s,
    then 18 s, then 24 s), with back-off that never sleeps past the deadline. Its sleeps go through the
    container client's transport wrapper, whose ``sleep`` is a plain one (not DeadlineTransport.sleep): hence the
    same clamp here, on the back-off it computes."""
    from azure.storage.blob import ExponentialRetry

    class BudgetExponentialRetry(ExponentialRetry):
        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            # The policy's sleep (its only caller) skips a zero back-off and sleeps the rest on the transport.
            return _within_deadline(super().get_backoff_time(settings))

    return BudgetExponentialRetry(initial_backoff=settings.get("retry_backoff_factor", 0.4), increment_base=2,
                                  retry_total=settings.get("retry_total", 3), random_jitter_range=1)


def client_options(settings: dict[str, Any], *, blob: bool = False) -> dict[str, Any]:
    """Keyword arguments for a Table (or, ``blob``, a Blob) client: ``settings`` (retries, timeouts) and a
    DeadlineTransport that carries the same connection and read timeouts."""
    transport = DeadlineTransport(connection_timeout=settings.get("connection_timeout", 5),
                                  read_timeout=settings.get("read_timeout", 20))
    options = {**settings, "transport": transport}
    if blob:
        options["retry_policy"] = _blob_retry(settings)
    return options


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
