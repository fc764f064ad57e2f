"""Azure Digital Twins through ``azure-digitaltwins-core`` (managed identity via DefaultAzureCredential).

Retries are azure-core's own RetryPolicy, tuned so that one invocation stays well under Event Grid's 30 s
deadline (3 retries, back-off capped at 4 s, 429 ``Retry-After`` honoured, absolute timeout 20 s); no second retry
loop is stacked on top. What is left after that budget becomes a ``TransientError`` so the broker redelivers.

A write whose response was lost (read timeout after sending: azure-core does not retry PATCH then) may or may not
have been applied; it is reported as ``TwinConflict`` so the applier re-reads the twin and re-plans. Patches hold
absolute values and are conditional on the ETag, so that resolves it either way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineContext, PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy
from azure.digitaltwins.core import DigitalTwinsClient

from shared.errors import Code, TransientError, TwinConflict, TwinMissing, TwinRejected
from shared.observability import ADT_CALLS, ADT_RETRIED, ADT_THROTTLED, METRICS, Metrics
from shared.twins import deadline
from shared.twins.write_pacer import Throttled

# azure-core RetryPolicy settings (constructor kwargs of every azure-core client).
RETRY_SETTINGS: dict[str, Any] = {
    "retry_total": 3,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 4,
    "timeout": 20,  # absolute seconds across all retries of one call
    "connection_timeout": 5,
    "read_timeout": 5,  # twin reads and patches are small (≤ 32 KB); a lost response must not eat the budget
}


# Waiting (Retry-After or back-off) within one call must end by then, so that a whole delivery (a few calls)
# fits Event Grid's 30 s. A Retry-After is not capped by retry_backoff_max, hence this budget.
RETRY_BUDGET_SECONDS = 8.0


class BudgetRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's RetryPolicy, unchanged in what it retries (statuses, methods, ``Retry-After`` honoured as is),
    with one rule added: a retry whose wait would end past the call's budget is not attempted. The 429 or error
    then surfaces at once (→ ``TransientError``, the broker redelivers) instead of sleeping past the deadline."""

    def __init__(self, *, budget: float = RETRY_BUDGET_SECONDS, clock: Callable[[], float] = time.monotonic,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget
        self.clock = clock

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        budget = self.budget
        left = deadline.remaining()  # the invocation's budget (shared/twins/deadline.py), when one is running
        if left is not None:
            budget = min(budget, max(0.0, left))
        settings["deadline"] = self.clock() + budget
        return settings

    def increment(self, settings: dict[str, Any], response: Any = None, error: Any = None) -> bool:
        if not super().increment(settings, response=response, error=error):
            return False
        wait = self.get_retry_after(response) if isinstance(response, PipelineResponse) else None
        if wait is None:
            wait = self.get_backoff_time(settings)
        return bool(self.clock() + wait <= settings["deadline"])


def retry_policy(clock: Callable[[], float] = time.monotonic) -> BudgetRetryPolicy:
    """The policy every AdtTwinStore uses (tests pass the fake transport's clock)."""
    return BudgetRetryPolicy(clock=clock, **RETRY_SETTINGS)


def _etag_from_headers(_response: Any, _deserialized: Any, headers: dict[str, str]) -> str | None:
    return headers.get("ETag")


def _translate(exc: Exception, what: str, *, twin_write: bool = False) -> Exception:
    if isinstance(exc, ResourceModifiedError | ResourceExistsError):
        return TwinConflict(f"{what}: precondition failed")
    if isinstance(exc, ServiceResponseError):
        if twin_write:  # may have applied: the applier re-reads and re-plans (patches are absolute)
            return TwinConflict(f"{what}: no response, outcome unknown ({exc.__class__.__name__})")
        # A read (or an idempotent relationship write) with no answer past the budget: nothing to resolve.
        return TransientError(Code.ADT_UNAVAILABLE, f"{what}: no response from Azure Digital Twins: {exc}")
    if isinstance(exc, ServiceRequestError):
        return TransientError(Code.ADT_UNAVAILABLE, f"{what}: cannot reach Azure Digital Twins: {exc}")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = (exc.error.code if exc.error is not None else None) or str(status)
        if status == 412:
            return TwinConflict(f"{what}: precondition failed")
        if status == 404 and code == "TargetTwinNotFound":
            # The relationship's target does not exist: this write can never succeed as it is (not "the twin
            # vanished"); spec: DigitalTwins_AddRelationship answers 404 TargetTwinNotFound.
            return TwinRejected(code, (exc.message or str(exc))[:500])
        if status == 404:
            return TwinMissing(f"{what}: {code}")
        if status == 429:  # the pacer (shared/twins/write_pacer.py) holds every call for the Retry-After
            return Throttled(f"{what}: throttled past the retry budget", retry_after_seconds(exc.response))
        if status == 400 and code == "RelationshipsNotDeleted":
            return TwinConflict(f"{what}: a relationship appeared meanwhile")  # a race, not bad input: retry
        if status in (400, 409, 413, 422):
            return TwinRejected(code, (exc.message or str(exc))[:500])
        if status in (401, 403):
            return TransientError(Code.ADT_UNAVAILABLE,
                                  f"{what}: {status} — check the identity's Azure Digital Twins Data Owner role")
        return TransientError(Code.ADT_UNAVAILABLE, f"{what}: HTTP {status} {code}")
    return exc


class CountingPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Counts ADT calls, 429s and retries. Runs once per attempt (a per-retry policy); the request context lives
    across the attempts of one call, so the first attempt is the call and the others are the retries."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or METRICS

    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        if request.context.get("twinbridge_attempted"):
            self.metrics.add(ADT_RETRIED)
        else:
            request.context["twinbridge_attempted"] = True
            self.metrics.add(ADT_CALLS)

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:  # type: ignore[type-arg]
        if response.http_response.status_code == 429:
            self.metrics.add(ADT_THROTTLED)


# Only its Retry-After reading is used (RetryPolicy.get_retry_after): the wait azure-core's own retries honour.
_RETRY_AFTER_READER = RetryPolicy(retry_total=0)


def retry_after_seconds(response: Any) -> float | None:
    """The wait a 429 asks for (an HTTP response, or a pipeline response), read by azure-core as its retries read
    it: ``Retry-After`` in seconds or as an HTTP date, else ``retry-after-ms`` / ``x-ms-retry-after-ms``; None when
    there is none or it cannot be read."""
    if not isinstance(response, PipelineResponse):
        if getattr(response, "headers", None) is None:
            return None
        response = PipelineResponse(getattr(response, "request", None), response, PipelineContext(None))
    try:
        return _RETRY_AFTER_READER.get_retry_after(response)
    except (ValueError, TypeError, OverflowError):  # an unreadable value is no instruction: the caller backs off
        return None


class ThrottleListener(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Tells ``on_throttled`` about every 429 (retried by azure-core or not), with its wait in seconds: the write
    pacer then holds all of this process's calls, not only the one that was throttled."""

    def __init__(self, on_throttled: Callable[[float | None], None]) -> None:
        self.on_throttled = on_throttled

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:  # type: ignore[type-arg]
        if response.http_response.status_code == 429:
            self.on_throttled(retry_after_seconds(response))


class AdtTwinStore:
    def __init__(self, client: DigitalTwinsClient) -> None:
        self.client = client

    @classmethod
    def from_url(cls, url: str, credential: TokenCredential | None = None, **client_kwargs: Any) -> AdtTwinStore:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        client_kwargs.setdefault("per_retry_policies", [CountingPolicy()])
        client_kwargs.setdefault("retry_policy", retry_policy())
        return cls(DigitalTwinsClient(url, credential, **{**RETRY_SETTINGS, **client_kwargs}))

    def get_twin(self, twin_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.get_digital_twin(twin_id))
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise _translate(exc, f"GET {twin_id}") from exc

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        try:
            created = self.client.upsert_digital_twin(twin_id, document, match_condition=MatchConditions.IfMissing)
        except Exception as exc:
            raise _translate(exc, f"PUT {twin_id}", twin_write=True) from exc
        return str(created.get("$etag", ""))

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        try:
            new_etag = self.client.update_digital_twin(
                twin_id, patch, etag=etag, match_condition=MatchConditions.IfNotModified, cls=_etag_from_headers)
        except Exception as exc:
            raise _translate(exc, f"PATCH {twin_id}", twin_write=True) from exc
        return str(new_etag or "")

    def delete_twin(self, twin_id: str, etag: str | None = None) -> None:
        """ADT refuses to delete a twin with relationships (400 RelationshipsNotDeleted): remove them first."""
        try:
            if etag:
                # Check first: a twin re-created since our read must keep its relationships (ADT has no
                # transaction across a twin and its relationships; this narrows the window, it cannot close it).
                current = self.get_twin(twin_id)
                if current is None:
                    return
                if current.get("$etag") != etag:
                    raise TwinConflict(f"DELETE {twin_id}: changed since read")
            for rel in self.list_relationships(twin_id):
                self._delete_relationship_if_present(twin_id, rel["$relationshipId"])
            for incoming in self.list_incoming_relationships(twin_id):
                self._delete_relationship_if_present(incoming["$sourceId"], incoming["$relationshipId"])
            if etag:
                self.client.delete_digital_twin(twin_id, etag=etag, match_condition=MatchConditions.IfNotModified)
            else:
                self.client.delete_digital_twin(twin_id)
        except (ResourceNotFoundError, TwinMissing):
            # Gone already (ADT answers 404 DigitalTwinNotFound to listing a missing twin's relationships, and
            # to its DELETE): a delete is idempotent.
            return
        except (TwinConflict, TwinRejected, TransientError):
            raise
        except Exception as exc:
            raise _translate(exc, f"DELETE {twin_id}", twin_write=True) from exc

    def _delete_relationship_if_present(self, source: str, relationship_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.client.delete_relationship(source, relationship_id)

    def list_twins(self) -> Iterator[dict[str, Any]]:
        try:
            yield from (dict(t) for t in self.client.query_twins("SELECT * FROM digitaltwins"))
        except Exception as exc:
            raise _translate(exc, "query twins") from exc

    def list_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        try:
            return [dict(r) for r in self.client.list_relationships(twin_id)]
        except Exception as exc:
            raise _translate(exc, f"list relationships of {twin_id}") from exc

    def list_incoming_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        try:
            return [{"$relationshipId": r.relationship_id, "$sourceId": r.source_id,
                     "$relationshipName": r.relationship_name, "$targetId": twin_id}
                    for r in self.client.list_incoming_relationships(twin_id)]
        except Exception as exc:
            raise _translate(exc, f"list incoming relationships of {twin_id}") from exc

    def upsert_relationship(self, twin_id: str, relationship_id: str, relationship: dict[str, Any]) -> str:
        try:
            stored = self.client.upsert_relationship(twin_id, relationship_id, relationship)
        except Exception as exc:
            raise _translate(exc, f"PUT relationship {twin_id}/{relationship_id}") from exc
        return str(stored.get("$etag", ""))

    def delete_relationship(self, twin_id: str, relationship_id: str) -> None:
        try:
            self.client.delete_relationship(twin_id, relationship_id)
        except Exception as exc:
            raise _translate(exc, f"DELETE relationship {twin_id}/{relationship_id}") from exc
