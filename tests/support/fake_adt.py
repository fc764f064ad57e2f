"""A fake Azure Digital Twins data plane for ``responses``: the real DigitalTwinsClient talks HTTP to it.

REST behaviour per the 2023-10-31 data-plane spec (docs/azure-behaviour.md §4): GET 200/404 ``DigitalTwinNotFound``;
PUT with
``If-None-Match: *`` 200/412 ``PreconditionFailed``; PATCH 204 + ``ETag`` / 412 / 404 / 400 ``JsonPatchInvalid`` or
``ValidationFailed``; DELETE 204 / 404 / 400 ``RelationshipsNotDeleted``; relationship list/put/delete; POST /query.
Twin semantics are delegated to the embedded store over the ADT engine; this module only speaks the protocol. The
contract suite's reference run is the real emulator (``adt serve``, tests/adapters/conftest.py); this fake stays for
the tests that script HTTP faults or record the exact requests (tests/support/fault_transport.py covers 429/503/
timeouts under the pipeline). Scripted faults
(``fail_next``) answer the next matching requests with a status (e.g. 429 + Retry-After, 503).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

import orjson
import responses
from azure.core.credentials import AccessToken

from shared.adapters.twins.embedded import AdtError
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.errors import TwinConflict, TwinMissing, TwinRejected

ENDPOINT = "https://fake-adt.api.wus2.digitaltwins.azure.net"


class FakeCredential:
    """Any object with get_token() is a TokenCredential; the bearer token is what the fake service sees."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


_TWIN = re.compile(r"^/digitaltwins/([^/]+)$")
_RELS = re.compile(r"^/digitaltwins/([^/]+)/relationships$")
_REL = re.compile(r"^/digitaltwins/([^/]+)/relationships/([^/]+)$")
_INCOMING = re.compile(r"^/digitaltwins/([^/]+)/incomingrelationships$")


@dataclass
class Fault:
    method: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    code: str = "ServiceError"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, orjson.dumps({"error": {"code": code, "message": message}})


class FakeAdt:
    def __init__(self, graph: EmbeddedTwinStore, mock: responses.RequestsMock) -> None:
        self.graph = graph
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        pattern = re.compile(re.escape(ENDPOINT) + r"/.*")
        for method in ("GET", "PUT", "PATCH", "DELETE", "POST"):
            mock.add_callback(method, pattern, callback=self._handle)

    def fail_next(self, method: str, status: int, times: int = 1, headers: dict[str, str] | None = None,
                  code: str = "ServiceError") -> None:
        self.faults.extend(Fault(method, status, headers or {}, code) for _ in range(times))

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("PUT", "PATCH", "DELETE")]

    def _handle(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        path = urlparse(request.url).path
        body = orjson.loads(request.body) if request.body else None
        self.requests.append(Recorded(request.method, unquote(path), dict(request.headers), body))
        for i, fault in enumerate(self.faults):
            if fault.method == request.method:
                del self.faults[i]
                status, headers, payload = _error(fault.status, fault.code, "injected fault")
                return status, {**headers, **fault.headers}, payload
        try:
            status, headers, payload = self._route(request.method, path, dict(request.headers), body)
            if payload:
                headers = {"Content-Type": "application/json; charset=utf-8", **headers}
            return status, headers, payload
        except TwinConflict as exc:
            return _error(412, "PreconditionFailed", str(exc))
        except TwinMissing as exc:
            return _error(404, str(exc).split(":")[0], str(exc))
        except TwinRejected as exc:
            return _error(400, exc.code, exc.message)
        except AdtError as exc:
            return _error(exc.status, exc.code, exc.message)

    def _route(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], bytes]:
        if method == "POST" and path == "/query":
            return 200, {}, orjson.dumps({"value": list(self.graph.list_twins()), "continuationToken": None})
        if m := _TWIN.match(path):
            return self._twin(method, unquote(m.group(1)), headers, body)
        if (m := _RELS.match(path)) and method == "GET":
            return 200, {}, orjson.dumps({"value": self.graph.list_relationships(unquote(m.group(1))),
                                          "nextLink": None})
        if (m := _INCOMING.match(path)) and method == "GET":
            target = unquote(m.group(1))
            value = [{"$relationshipId": r["$relationshipId"], "$sourceId": r["$sourceId"],
                      "$relationshipName": r.get("$relationshipName"),
                      "$relationshipLink": f"/digitaltwins/{r['$sourceId']}/relationships/{r['$relationshipId']}"}
                     for r in self.graph.list_incoming_relationships(target)]
            return 200, {}, orjson.dumps({"value": value, "nextLink": None})
        if m := _REL.match(path):
            source, rel_id = unquote(m.group(1)), unquote(m.group(2))
            if method == "PUT":
                etag = self.graph.upsert_relationship(source, rel_id, body)
                stored = next(r for r in self.graph.list_relationships(source) if r["$relationshipId"] == rel_id)
                return 200, {"ETag": etag}, orjson.dumps(stored)
            if method == "DELETE":
                self.graph.delete_relationship(source, rel_id)
                return 204, {}, b""
        return _error(404, "NotFound", f"{method} {path}")

    def _twin(self, method: str, twin_id: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], bytes]:
        if method == "GET":
            twin = self.graph.get_twin(twin_id)
            if twin is None:
                return _error(404, "DigitalTwinNotFound", f"There is no digital twin instance that exists with "
                                                          f"the ID {twin_id}.")
            return 200, {"ETag": twin["$etag"]}, orjson.dumps(twin)
        if method == "PUT":
            if headers.get("If-None-Match") != "*":
                return _error(400, "BadRequest", "this fake only supports create-only PUT (If-None-Match: *)")
            etag = self.graph.create_twin(twin_id, body)
            return 200, {"ETag": etag}, orjson.dumps(self.graph.get_twin(twin_id))
        if method == "PATCH":
            if headers.get("Content-Type", "").split(";")[0] != "application/json-patch+json":
                return _error(400, "JsonPatchInvalid", "content type must be application/json-patch+json")
            etag = self.graph.patch_twin(twin_id, body, headers.get("If-Match", "*"))
            return 204, {"ETag": etag}, b""
        if method == "DELETE":
            if self.graph.get_twin(twin_id) is None:
                return _error(404, "DigitalTwinNotFound", twin_id)
            self.graph.graph.delete_twin(twin_id, if_match=headers.get("If-Match"))
            return 204, {}, b""
        return _error(405, "MethodNotAllowed", method)
