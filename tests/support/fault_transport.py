"""A fault-injecting azure-core transport that plays Azure Digital Twins under the real ``DigitalTwinsClient``.

Everything above the socket is real: the client, its generated operations, azure-core's RetryPolicy (so its
actual rules on which methods and statuses are retried, and how ``Retry-After`` is honoured) and our adapter.
The transport keeps an in-memory twin map with ETags, applies JSON Patch as ADT does (``replace``/``remove`` of a
missing property → 400 JsonPatchInvalid), honours ``If-Match`` / ``If-None-Match`` (412), records every request,
and follows a script of faults:

* ``throttle(seconds)``      429 with ``Retry-After`` (nothing applied)
* ``unavailable(status)``    503 (or any 5xx; nothing applied)
* ``apply_then_timeout()``   the request is applied, then the response is lost (``ServiceResponseError``)
* ``timeout_before_apply()`` the request is lost before the service sees it (``ServiceResponseError``)
* ``race(patch)``            another writer patches the twin (new ETag) just before this request is handled

``sleep()`` never sleeps: it records the duration and advances a fake clock, which every request also advances by
its latency (and a lost response by the read timeout), so time budgets are checked without waiting.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import orjson
import requests
from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.transport import HttpTransport
from azure.core.pipeline.transport._requests_basic import RequestsTransportResponse
from azure.core.rest._requests_basic import RestRequestsTransportResponse

Twin = dict[str, Any]


@dataclass
class Fault:
    kind: str  # throttle | unavailable | apply_then_timeout | timeout_before_apply | race
    method: str | None = None  # only requests with this method (None: any)
    twin_id: str | None = None  # only requests on this twin (None: any)
    times: int = 1
    retry_after: float = 0.0
    status: int = 503
    patch: list[dict[str, Any]] = field(default_factory=list)

    def matches(self, method: str, twin_id: str | None) -> bool:
        return ((self.method is None or self.method == method)
                and (self.twin_id is None or self.twin_id == twin_id) and self.times > 0)


def throttle(seconds: float, *, method: str | None = None, times: int = 1) -> Fault:
    return Fault("throttle", method, times=times, retry_after=seconds)


def unavailable(status: int = 503, *, method: str | None = None, times: int = 1) -> Fault:
    return Fault("unavailable", method, times=times, status=status)


def apply_then_timeout(method: str = "PATCH", *, times: int = 1) -> Fault:
    return Fault("apply_then_timeout", method, times=times)


def timeout_before_apply(method: str | None = None, *, times: int = 1) -> Fault:
    return Fault("timeout_before_apply", method, times=times)


def race(patch: list[dict[str, Any]], *, method: str = "PATCH", times: int = 1) -> Fault:
    return Fault("race", method, times=times, patch=patch)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int | str  # HTTP status, or the fault that replaced the response
    at: float


class FaultTransport(HttpTransport):  # type: ignore[type-arg]
    def __init__(self, script: list[Fault] | None = None, *, latency: float = 0.02, read_timeout: float = 10.0
                 ) -> None:
        self.script = list(script or [])
        self.twins: dict[str, Twin] = {}
        self.requests: list[Recorded] = []
        self.sleeps: list[float] = []
        self.injected: dict[str, int] = {}
        self.applied_patches: dict[str, int] = {}  # twin id -> PATCHes that changed it (ours and the racer's)
        self.raced: set[str] = set()  # twins the other writer changed
        self.now = 0.0
        self.latency = latency
        self.read_timeout = read_timeout
        self._versions = itertools.count(1)
        self._lock = threading.RLock()

    # ---- HttpTransport -----------------------------------------------------------------------------------
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> FaultTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def sleep(self, duration: float) -> None:
        with self._lock:
            self.sleeps.append(duration)
            self.now += duration

    def clock(self) -> float:
        return self.now

    def send(self, request: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.now += self.latency
            method = request.method.upper()
            path = urlparse(request.url).path
            headers = {k: v for k, v in request.headers.items() if k.lower() in _RECORDED_HEADERS}
            body = _body(request)
            twin_id = _twin_id(path)
            fault = next((f for f in self.script if f.matches(method, twin_id)), None)
            if fault is not None:
                fault.times -= 1
                self.injected[fault.kind] = self.injected.get(fault.kind, 0) + 1
                if fault.kind == "race" and twin_id in self.twins:
                    self._patch(twin_id, fault.patch)  # the other writer, unconditionally, just before us
                    self.raced.add(twin_id)
                    self.applied_patches[twin_id] = self.applied_patches.get(twin_id, 0) + 1
                    fault = None
            if fault is not None and fault.kind in ("throttle", "unavailable"):
                status = 429 if fault.kind == "throttle" else fault.status
                extra = {"Retry-After": _seconds(fault.retry_after)} if fault.kind == "throttle" else {}
                code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
                self._record(method, path, headers, body, status)
                return _response(request, status, {"error": {"code": code, "message": "injected"}}, extra)
            if fault is not None and fault.kind == "timeout_before_apply":
                self.now += self.read_timeout
                self._record(method, path, headers, body, "timeout_before_apply")
                raise ServiceResponseError("injected: the response never came (not applied)")
            status, payload, extra = self._handle(method, path, request, body)
            if fault is not None and fault.kind == "apply_then_timeout":
                self.now += self.read_timeout
                self._record(method, path, headers, body, f"apply_then_timeout({status})")
                raise ServiceResponseError("injected: the response was lost after the write was applied")
            self._record(method, path, headers, body, status)
            return _response(request, status, payload, extra)

    # ---- a tiny Azure Digital Twins ------------------------------------------------------------------------
    def _handle(self, method: str, path: str, request: Any, body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["query"] and method == "POST":
            return 200, {"value": [copy.deepcopy(t) for t in self.twins.values()]}, {}
        if len(parts) == 3 and parts[0] == "digitaltwins" and parts[2] in ("relationships", "incomingrelationships"):
            return 200, {"value": []}, {}
        if len(parts) != 2 or parts[0] != "digitaltwins":
            return 404, {"error": {"code": "NotFound", "message": path}}, {}
        twin_id = parts[1]
        current = self.twins.get(twin_id)
        if_match = request.headers.get("If-Match")
        if_none_match = request.headers.get("If-None-Match")
        if method == "GET":
            if current is None:
                return 404, _error("DigitalTwinNotFound", twin_id), {}
            return 200, copy.deepcopy(current), {"ETag": current["$etag"]}
        if method == "PUT":
            if if_none_match == "*" and current is not None:
                return 412, _error("PreconditionFailed", "twin exists (If-None-Match: *)"), {}
            twin = {k: copy.deepcopy(v) for k, v in body.items() if not k.startswith("$")}
            twin.update({"$dtId": twin_id, "$etag": self._etag(), "$metadata": copy.deepcopy(body["$metadata"])})
            self.twins[twin_id] = twin
            return 200, copy.deepcopy(twin), {"ETag": twin["$etag"]}
        if method in ("PATCH", "DELETE"):
            if current is None:
                return 404, _error("DigitalTwinNotFound", twin_id), {}
            if if_match not in (None, "*") and if_match != current["$etag"]:
                return 412, _error("PreconditionFailed", "The precondition check (If-Match) failed."), {}
            if method == "DELETE":
                del self.twins[twin_id]
                return 204, None, {}
            problem = self._patch(twin_id, body)
            if problem:
                return 400, _error("JsonPatchInvalid", problem), {}
            self.applied_patches[twin_id] = self.applied_patches.get(twin_id, 0) + 1
            return 204, None, {"ETag": self.twins[twin_id]["$etag"]}
        return 405, _error("MethodNotAllowed", method), {}

    def _patch(self, twin_id: str, patch: list[dict[str, Any]]) -> str | None:
        updated = copy.deepcopy(self.twins[twin_id])
        for op in patch:
            parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
            parent: Any = updated
            for part in parts[:-1]:
                if not isinstance(parent, dict) or part not in parent:
                    return f"{op['path']}: parent does not exist"
                parent = parent[part]
            leaf = parts[-1]
            if op["op"] in ("replace", "remove") and leaf not in parent:
                return f"{op['path']}: cannot {op['op']} a property that is not set"
            if op["op"] == "remove":
                del parent[leaf]
            else:
                parent[leaf] = copy.deepcopy(op["value"])
        updated["$etag"] = self._etag()
        self.twins[twin_id] = updated
        return None

    def _etag(self) -> str:
        return f'W/"fake-{next(self._versions)}"'

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any, status: int | str) -> None:
        self.requests.append(Recorded(method, path, headers, body, status, self.now))

    # ---- what tests look at ------------------------------------------------------------------------------
    def writes(self, method: str = "PATCH") -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    def seed(self, twin_id: str, model: str, **properties: Any) -> None:
        with self._lock:
            self.twins[twin_id] = {"$dtId": twin_id, "$etag": self._etag(), "$metadata": {"$model": model},
                                   **properties}


_RECORDED_HEADERS = ("if-match", "if-none-match", "content-type", "authorization")


def _twin_id(path: str) -> str | None:
    parts = path.strip("/").split("/")
    return unquote(parts[1]) if len(parts) >= 2 and parts[0] == "digitaltwins" else None


def _body(request: Any) -> Any:
    raw = getattr(request, "content", None)
    if raw is None:
        raw = getattr(request, "data", None) or getattr(request, "body", None)
    if hasattr(raw, "read"):  # a retried body is a stream: read it and put it back
        position = raw.tell()
        data = raw.read()
        raw.seek(position)
        raw = data
    if raw in (None, b"", ""):
        return None
    return orjson.loads(raw if isinstance(raw, bytes | str) else orjson.dumps(raw))


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _response(request: Any, status: int, payload: Any, headers: dict[str, str]) -> Any:
    internal = requests.Response()
    internal.status_code = status
    internal.reason = requests.status_codes._codes.get(status, ("",))[0].replace("_", " ").title()  # type: ignore[attr-defined]
    internal._content = b"" if payload is None else orjson.dumps(payload)
    internal._content_consumed = True  # type: ignore[attr-defined]
    internal.headers.update(headers)
    if payload is not None:
        internal.headers["Content-Type"] = "application/json; charset=utf-8"
    internal.url = request.url
    if hasattr(request, "content"):  # an azure.core.rest.HttpRequest
        return RestRequestsTransportResponse(request=request, internal_response=internal, block_size=4096)
    return RequestsTransportResponse(request, internal, 4096)


Clock = Callable[[], float]
