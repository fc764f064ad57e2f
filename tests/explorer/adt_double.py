"""An in-process ADT data plane for the explorer's fast API tests (no subprocess, no TLS; it records every query text
the explorer sends and pages as small as a test asks). The same API against the ADT emulator (``python -m twinbridge
adt serve``, the real query language) is tested in test_on_emulator.py and test_browser.py.

It is ``tests/support/fake_adt.py`` (the real ``DigitalTwinsClient`` talks to it through ``responses``) with the
operations the explorer adds: ``GET /models`` and ``GET /models/{id}`` (the DTDL files it was given), and a ``POST
/query`` that pages. It does NOT implement the query language: a test registers each query text it will send with
the rows a real ADT would return (``answer``); any other text is refused with 400 ``BadRequest``, so a test fails
when the explorer does not send the query it was given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import orjson
import responses

from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from tests.support.fake_adt import ENDPOINT, FakeAdt

ALL_TWINS = "SELECT * FROM DIGITALTWINS"
ALL_RELATIONSHIPS = "SELECT * FROM RELATIONSHIPS"
_MODEL = re.compile(r"^/models/([^/]+)$")


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", "x-ms-error-code": code}, orjson.dumps(
        {"error": {"code": code, "message": message}})


class AdtDouble:
    def __init__(self, graph: EmbeddedTwinStore, mock: responses.RequestsMock, models: list[dict[str, Any]],
                 page_size: int = 1000) -> None:
        self.graph = graph
        self.fake = FakeAdt(graph, responses.RequestsMock())  # its routes, without its own registration
        self.models = {m["@id"]: m for m in models}
        self.page_size = page_size
        self.answers: dict[str, Callable[[], list[dict[str, Any]]]] = {
            ALL_TWINS: lambda: list(self.graph.list_twins()),
            ALL_RELATIONSHIPS: self.relationships,
        }
        self.queries: list[str] = []
        self.uploaded = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).isoformat()
        mock.add_callback(responses.GET, re.compile(re.escape(ENDPOINT) + r"/.*"), callback=self._handle)
        for method in ("PUT", "PATCH", "DELETE", "POST"):
            mock.add_callback(method, re.compile(re.escape(ENDPOINT) + r"/.*"), callback=self._handle)

    def answer(self, query: str, rows: Callable[[], list[dict[str, Any]]]) -> None:
        self.answers[query] = rows

    def relationships(self) -> list[dict[str, Any]]:
        return [r for t in self.graph.list_twins() for r in self.graph.list_relationships(t["$dtId"])]

    def _handle(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        url = urlparse(request.url)
        path = unquote(url.path)
        if request.method == "POST" and path == "/query":
            return self._query(orjson.loads(request.body or b"{}"))
        if request.method == "GET" and path == "/models":
            return 200, {"Content-Type": "application/json"}, orjson.dumps(
                {"value": [self._model(m) for m in self.models.values()], "nextLink": None})
        if request.method == "GET" and (m := _MODEL.match(path)):
            model = self.models.get(m.group(1))
            if model is None:
                return _error(404, "ModelNotFound", m.group(1))
            include = parse_qs(url.query).get("includeModelDefinition", ["false"])[0] == "true"
            return 200, {"Content-Type": "application/json"}, orjson.dumps(self._model(model, include))
        return self.fake._handle(request)

    def _model(self, model: dict[str, Any], include: bool = True) -> dict[str, Any]:
        data = {"id": model["@id"], "displayName": {"en": model.get("displayName", "")}, "uploadTime": self.uploaded,
                "decommissioned": False}
        return {**data, "model": model} if include else data

    def _query(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        text = str(body.get("query", ""))
        self.queries.append(text)
        rows = self.answers.get(text)
        if rows is None:
            return _error(400, "BadRequest", f"this test double has no answer registered for {text!r}")
        items = rows()
        start = int(body.get("continuationToken") or 0)
        end = start + self.page_size
        token = str(end) if end < len(items) else None
        return 200, {"Content-Type": "application/json", "query-charge": "1"}, orjson.dumps(
            {"value": items[start:end], "continuationToken": token})
