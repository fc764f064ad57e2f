"""The explorer's data source: an ADT data plane (the emulator, or a real instance) through ``DigitalTwinsClient``.

Everything the page shows about twins goes through the documented data-plane operations (api-version 2023-10-31):
``POST /query`` (twins and relationships of the graph, the query box; ``continuationToken`` for the next page),
``GET /digitaltwins/{id}``, ``GET …/relationships``, ``GET …/incomingrelationships`` and ``GET /models``.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.digitaltwins.core import DigitalTwinsClient

# ADT answers at most 1,000 items per query page; the graph view stops at this many twins so that a large instance
# does not turn the page into a hairball (the query box still pages through everything).
GRAPH_LIMIT = 2000
ALL_TWINS = "SELECT * FROM DIGITALTWINS"
ALL_RELATIONSHIPS = "SELECT * FROM RELATIONSHIPS"


class SourceError(Exception):
    """A data-plane failure the page can show: HTTP status, ADT's error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def to_data(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


class StaticToken:
    """A bearer token for the local emulator, which accepts any token. Never used for a non-loopback URL."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("twinbridge-explorer-local", int(time.time()) + 3600)


def is_loopback(url: str) -> bool:
    host = (urlparse(url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def credential_for(url: str, kind: str = "auto") -> TokenCredential:
    """``auto``: the static token on loopback (the emulator), DefaultAzureCredential anywhere else."""
    if kind == "static" or (kind == "auto" and is_loopback(url)):
        if not is_loopback(url):
            raise ValueError(f"a static token is only sent to a loopback URL, not to {url}")
        return StaticToken()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _translate(exc: Exception) -> SourceError:
    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        headers = getattr(exc.response, "headers", None) or {}
        code = getattr(error, "code", None) or headers.get("x-ms-error-code")
        message = getattr(error, "message", None) or exc.message or str(exc)
        return SourceError(exc.status_code or 502, str(code or "HttpResponseError"), str(message))
    if isinstance(exc, ServiceRequestError):
        return SourceError(502, "ServiceUnreachable", str(exc))
    return SourceError(500, type(exc).__name__, str(exc))


@dataclass
class QueryPage:
    items: list[dict[str, Any]]
    continuation_token: str | None


class AdtSource:
    """Read-only views of one ADT instance for the explorer. Every failure becomes a ``SourceError``."""

    def __init__(self, client: DigitalTwinsClient, url: str) -> None:
        self.client = client
        self.url = url

    @classmethod
    def connect(cls, url: str, credential: TokenCredential | None = None, ca_file: str | None = None,
                **client_kwargs: Any) -> AdtSource:
        if ca_file:
            client_kwargs["connection_verify"] = ca_file  # the emulator's self-signed CA
        client_kwargs.setdefault("retry_total", 2)  # a browser is waiting: fail visibly rather than retry for long
        return cls(DigitalTwinsClient(url, credential or credential_for(url), **client_kwargs), url)

    def query_page(self, query: str, continuation_token: str | None = None) -> QueryPage:
        try:
            pages: Any = self.client.query_twins(query).by_page(continuation_token=continuation_token)
            items = [dict(item) for item in next(pages, [])]
            return QueryPage(items, pages.continuation_token or None)  # the token of the page just read
        except Exception as exc:
            raise _translate(exc) from exc

    def query_all(self, query: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` items of every page; True when more were left."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.query_page(query, token)
            items.extend(page.items)
            token = page.continuation_token
            if len(items) >= limit:
                return items[:limit], bool(token) or len(items) > limit
            if not token:
                return items, False

    def graph(self, limit: int = GRAPH_LIMIT) -> dict[str, Any]:
        twins, more_twins = self.query_all(ALL_TWINS, limit)
        known = {str(t.get("$dtId")) for t in twins}
        relationships, more_rels = self.query_all(ALL_RELATIONSHIPS, limit * 4)
        return {
            "twins": twins,
            "relationships": [r for r in relationships
                              if r.get("$sourceId") in known and r.get("$targetId") in known],
            "truncated": more_twins or more_rels,
        }

    def twin(self, twin_id: str) -> dict[str, Any] | None:
        """The twin as GET returns it, with its relationships both ways and its model (when the instance has it)."""
        try:
            twin = dict(self.client.get_digital_twin(twin_id))
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise _translate(exc) from exc
        try:
            outgoing = [dict(r) for r in self.client.list_relationships(twin_id)]
            incoming = [_wire(r) for r in self.client.list_incoming_relationships(twin_id)]
        except Exception as exc:
            raise _translate(exc) from exc
        model_id = (twin.get("$metadata") or {}).get("$model")
        return {"twin": twin, "outgoing": outgoing, "incoming": incoming, "model": self.model(model_id)}

    def model(self, model_id: Any) -> dict[str, Any] | None:
        if not isinstance(model_id, str):
            return None
        try:
            data = self.client.get_model(model_id, include_model_definition=True)
        except (ResourceNotFoundError, HttpResponseError):
            return None  # the twin is still worth showing when its model cannot be read
        return _model_data(data)

    def models(self) -> list[dict[str, Any]]:
        try:
            return [_model_data(m) for m in self.client.list_models(include_model_definition=True)]
        except Exception as exc:
            raise _translate(exc) from exc

    def etags(self) -> Iterator[dict[str, Any]]:
        """Every twin, for the change poller (``SELECT *``: projections of system properties vary by service)."""
        token: str | None = None
        while True:
            page = self.query_page(ALL_TWINS, token)
            yield from page.items
            token = page.continuation_token
            if not token:
                return

    def close(self) -> None:
        # DigitalTwinsClient 1.3 has no close(); its pipeline's transport does (the connection pool).
        transport = getattr(getattr(getattr(self.client, "_client", None), "_client", None), "_pipeline", None)
        close = getattr(transport, "__exit__", None)
        if callable(close):
            close(None, None, None)


def _wire(value: Any) -> dict[str, Any]:
    """An SDK model object as the service sent it (REST names: ``$sourceId``, ``uploadTime``…)."""
    if hasattr(value, "serialize"):
        data: dict[str, Any] = value.serialize(keep_readonly=True)
        return data
    return dict(value)


def _model_data(model: Any) -> dict[str, Any]:
    data = _wire(model)
    return {"id": data.get("id"), "displayName": data.get("displayName"), "uploadTime": data.get("uploadTime"),
            "decommissioned": data.get("decommissioned"), "model": data.get("model")}
