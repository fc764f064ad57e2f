"""ADT's data-plane REST API (api-version 2023-10-31) over HTTPS, in front of one ``TwinGraph``.

Why the standard library's ``ThreadingHTTPServer`` + ``ssl``: the emulator is a local tool with a handful of
clients; HTTP/1.1 keep-alive, TLS and a thread per connection are all it needs, and it adds no dependency to
install (or to keep patched) next to the Functions app. The routing below is a small table of the spec's paths.

Any ``Authorization: Bearer …`` token is accepted (the emulator authenticates nobody — it binds to loopback
unless told otherwise). Responses follow the spec: JSON bodies, ``ETag`` headers, ``x-ms-error-code`` on errors,
``nextLink`` paging for lists, ``continuationToken`` and ``query-charge`` for queries.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from shared.adapters.twins.embedded import LIST_PAGE, QUERY_PAGE, AdtError, Pages, TwinGraph
from shared.adapters.twins.embedded.errors import bad_request
from shared.adapters.twins.embedded.graph import TRACEPARENT

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_REQUEST_BYTES = 1_048_576  # whole request bodies; twin/relationship/patch bodies are held to 32 KB by the engine
API_VERSION = "2023-10-31"

Handler = Callable[["_Request"], tuple[int, Any, dict[str, str]]]


class _Request:
    def __init__(self, handler: AdtRequestHandler, method: str, segments: list[str], query: dict[str, list[str]],
                 body: Any) -> None:
        self.handler = handler
        self.method = method
        self.segments = segments
        self.query = query
        self.body = body

    def header(self, name: str) -> str | None:
        return self.handler.headers.get(name)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() == "true"

    def page_size(self, default: int) -> int:
        raw = self.header("max-items-per-page") or self.header("x-ms-max-item-count")
        try:
            size = int(raw) if raw else default
        except ValueError:
            raise bad_request("InvalidArgument", f"max-items-per-page {raw!r} is not an integer") from None
        return max(1, min(size, default))


def _item(method: str, get: Callable[[], Any], writes: dict[str, Callable[[], object]]
          ) -> tuple[int, Any, dict[str, str]] | None:
    """One addressable item without an ETag (an event route, a model): GET → 200 with it, each of its write methods
    → 204 No Content; None for any other method (the caller answers that no such route exists)."""
    if method == "GET":
        return 200, get(), {}
    if method in writes:
        writes[method]()
        return 204, None, {}
    return None


class Emulator:
    """The graph plus what the REST surface keeps between calls (continuations)."""

    def __init__(self, graph: TwinGraph) -> None:
        self.graph = graph
        self.pages = Pages()
        self.status: Callable[[], Any] | None = None  # GET /$emulator/deliveries (event route deliveries)

    # ---- paging --------------------------------------------------------------------------------------------
    def _list(self, request: _Request, kind: str, produce: Callable[[], list[Any]]) -> tuple[int, Any, dict[str, str]]:
        size = request.page_size(LIST_PAGE)
        token = request.param("continuationToken")
        if token:
            items, rest = self.pages.next(kind, token, size)
        else:
            items, rest = self.pages.first(kind, produce(), size)
        body: dict[str, Any] = {"value": items, "nextLink": None}
        if rest is not None:
            host = request.header("Host") or "localhost"
            path = "/" + "/".join(urllib.parse.quote(s, safe="") for s in request.segments)
            body["nextLink"] = (f"https://{host}{path}?"
                                + urllib.parse.urlencode({"continuationToken": rest, "api-version": API_VERSION}))
        return 200, body, {}

    # ---- dispatch ------------------------------------------------------------------------------------------
    def handle(self, request: _Request) -> tuple[int, Any, dict[str, str]]:
        s, m = request.segments, request.method
        g = self.graph
        if not s:
            raise AdtError(404, "NotFound", "no such resource")
        head = s[0].lower()
        if head == "digitaltwins" and len(s) >= 2:
            return self._twins(request, s[1], s[2:], m)
        if head == "models":
            return self._models(request, s[1:], m)
        if head == "eventroutes":
            if len(s) == 1 and m == "GET":
                return self._list(request, "routes", g.list_event_routes)
            if len(s) == 2 and (answer := _item(m, lambda: g.get_event_route(s[1]), {
                    "PUT": lambda: g.put_event_route(s[1], request.body),
                    "DELETE": lambda: g.delete_event_route(s[1])})):
                return answer
        if head == "query" and len(s) == 1 and m == "POST":
            return self._query(request)
        if head == "$emulator" and s[1:] == ["deliveries"] and m == "GET" and self.status is not None:
            return 200, self.status(), {}
        raise _no_route(m, s)

    def _twins(self, request: _Request, twin_id: str, rest: list[str], m: str) -> tuple[int, Any, dict[str, str]]:
        g = self.graph
        if not rest:
            if m == "GET":
                twin = g.get_twin(twin_id)
                return 200, twin, {"ETag": twin["$etag"]}
            if m == "PUT":
                twin = g.put_twin(twin_id, request.body, if_none_match=request.header("If-None-Match"))
                return 200, twin, {"ETag": twin["$etag"]}
            if m == "PATCH":
                etag = g.patch_twin(twin_id, request.body, if_match=request.header("If-Match"))
                return 204, None, {"ETag": etag}
            if m == "DELETE":
                g.delete_twin(twin_id, if_match=request.header("If-Match"))
                return 204, None, {}
        kind = rest[0].lower()
        if kind == "relationships":
            if len(rest) == 1 and m == "GET":
                name = request.param("relationshipName")
                return self._list(request, "relationships", lambda: g.list_relationships(twin_id, name))
            if len(rest) == 2:
                rel_id = rest[1]
                if m == "GET":
                    rel = g.get_relationship(twin_id, rel_id)
                    return 200, rel, {"ETag": rel["$etag"]}
                if m == "PUT":
                    rel = g.put_relationship(twin_id, rel_id, request.body,
                                             if_none_match=request.header("If-None-Match"))
                    return 200, rel, {"ETag": rel["$etag"]}
                if m == "PATCH":
                    etag = g.patch_relationship(twin_id, rel_id, request.body, if_match=request.header("If-Match"))
                    return 204, None, {"ETag": etag}
                if m == "DELETE":
                    g.delete_relationship(twin_id, rel_id, if_match=request.header("If-Match"))
                    return 204, None, {}
        if kind == "incomingrelationships" and len(rest) == 1 and m == "GET":
            return self._list(request, "incoming", lambda: g.list_incoming_relationships(twin_id))
        if kind == "telemetry" and len(rest) == 1 and m == "POST":
            return self._telemetry(request, twin_id, None)
        if kind == "components" and len(rest) >= 2:
            component = rest[1]
            if len(rest) == 2 and m == "GET":
                value = g.get_component(twin_id, component)
                return 200, value, {"ETag": g.get_twin(twin_id)["$etag"]}
            if len(rest) == 2 and m == "PATCH":
                etag = g.patch_twin(twin_id, request.body, if_match=request.header("If-Match"), component=component)
                return 204, None, {"ETag": etag}
            if len(rest) == 3 and rest[2].lower() == "telemetry" and m == "POST":
                return self._telemetry(request, twin_id, component)
        raise _no_route(m, ["digitaltwins", twin_id, *rest])

    def _telemetry(self, request: _Request, twin_id: str, component: str | None) -> tuple[int, Any, dict[str, str]]:
        message_id = request.header("Message-Id")
        if not message_id:
            raise bad_request("InvalidArgument", "the Message-Id header is required")
        self.graph.send_telemetry(twin_id, request.body, message_id,
                                  source_time=request.header("Telemetry-Source-Time"), component=component)
        return 204, None, {}

    def _models(self, request: _Request, rest: list[str], m: str) -> tuple[int, Any, dict[str, str]]:
        g = self.graph
        include = request.flag("includeModelDefinition")
        if not rest:
            if m == "POST":
                return 201, g.add_models(request.body), {}
            if m == "GET":
                dependencies = request.query.get("dependenciesFor")
                return self._list(request, "models", lambda: g.list_models(dependencies, include))
        elif len(rest) == 1 and (answer := _item(m, lambda: g.get_model(rest[0], include), {
                "PATCH": lambda: g.update_model(rest[0], request.body), "DELETE": lambda: g.delete_model(rest[0])})):
            return answer
        raise _no_route(m, ["models", *rest])

    def _query(self, request: _Request) -> tuple[int, Any, dict[str, str]]:
        body = request.body
        if not isinstance(body, dict):
            raise bad_request("BadRequest", "the query body must be {\"query\": \"...\"}")
        size = request.page_size(QUERY_PAGE)
        token = body.get("continuationToken")
        if token:
            items, rest = self.pages.next("query", str(token), size)
            scanned = len(items)
        else:
            text = body.get("query")
            if not isinstance(text, str):
                raise bad_request("SqlQueryError", "the query text is required")
            all_items = self.graph.query(text)
            scanned = len(all_items)
            items, rest = self.pages.first("query", all_items, size)
        # Query units: ADT's formula is not public; this is a stand-in that grows with the rows returned.
        charge = 1.0 + round(scanned / 10, 2)
        return 200, {"value": items, "continuationToken": rest}, {"query-charge": f"{charge:.2f}"}


def _no_route(method: str, segments: list[str]) -> AdtError:
    return AdtError(404, "NotFound", f"{method} /{'/'.join(segments)} is not an operation of this service")


class AdtRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "twinbridge-adt-emulator"
    emulator: Emulator  # set on the subclass made by make_server
    quiet = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)

    def _serve(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        segments = [urllib.parse.unquote(s) for s in parsed.path.split("/") if s]
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self.rfile.read(length)
                raise AdtError(413, "PayloadTooLarge", f"request body over {MAX_REQUEST_BYTES} bytes")
            raw = self.rfile.read(length) if length else b""
            auth = self.headers.get("Authorization") or ""
            if not auth.lower().startswith("bearer ") or not auth[7:].strip():
                raise AdtError(401, "Unauthorized", "an Authorization: Bearer <token> header is required "
                                                    "(the emulator accepts any token)")
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError as exc:
                raise bad_request("InvalidArgument", f"the body is not JSON: {exc}") from None
            token = TRACEPARENT.set(self.headers.get("traceparent"))
            try:
                status, payload, headers = self.emulator.handle(_Request(self, self.command, segments, query, body))
            finally:
                TRACEPARENT.reset(token)
        except AdtError as error:
            status, payload, headers = error.status, error.body(), {"x-ms-error-code": error.code}
        except Exception as exc:  # a bug or a storage failure: answer like ADT's 500, keep serving
            status, payload = 500, {"error": {"code": "InternalServerError", "message": f"{type(exc).__name__}"}}
            headers = {"x-ms-error-code": "InternalServerError"}
        self._send(status, payload, headers)

    def _cors(self) -> dict[str, str]:
        """CORS for pages served from this machine (a browser explorer): loopback origins only, so another web
        site open in the same browser cannot read the twins."""
        origin = self.headers.get("Origin") or ""
        host = urllib.parse.urlsplit(origin).hostname if origin else None
        if host not in _LOOPBACK_NAMES:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Expose-Headers": "ETag, x-ms-error-code, query-charge"}

    def do_OPTIONS(self) -> None:  # the browser's preflight for Authorization / If-Match / JSON Patch requests
        headers = self._cors()
        if headers:
            headers.update({"Access-Control-Allow-Methods": "GET, PUT, PATCH, DELETE, POST, OPTIONS",
                            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, If-None-Match, "
                                                            "max-items-per-page, Message-Id, "
                                                            "Telemetry-Source-Time, traceparent",
                            "Access-Control-Max-Age": "600"})
        self._send(204 if headers else 403, None, headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = b"" if payload is None else orjson.dumps(payload)
        self.send_response(status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else None)
        for name, value in {**self._cors(), **headers}.items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = _serve


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(graph: TwinGraph, host: str, port: int, cert: Path, key: Path,
                verbose: bool = False) -> ThreadingHTTPServer:
    emulator = Emulator(graph)
    handler = type("BoundAdtRequestHandler", (AdtRequestHandler,), {"emulator": emulator, "quiet": not verbose})
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer
    if ":" in host:
        server_class = _V6Server
    server = server_class((host, port), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    # The handshake runs in the connection's thread (on first read), not in the accept loop: one slow client
    # cannot stall the others.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server
