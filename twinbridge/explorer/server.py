"""The explorer's HTTP server: the page, its static files, cytoscape from node_modules, and a same-origin JSON API.

``GET  /``                      the page (static/index.html); ``/static/*`` its CSS and JS; ``/vendor/cytoscape.js``
``GET  /api/info``              what this explorer reads (ADT URL, live mode, local run)
``GET  /api/graph``             twins and relationships (``POST /query`` on the source)
``GET  /api/twins/<id>``        one twin with ``$metadata``, relationships out and in, its model
``POST /api/query``             ``{"query", "continuationToken"}`` → one page of results
``GET  /api/models``            the models of the instance
``GET  /api/events``            server-sent events: live changes
``POST /api/notifications``     an ADT event route's webhook endpoint (Event Grid or CloudEvents schema)
``GET  /api/quarantine``        the local run's quarantined events; ``POST /api/quarantine/replay`` replays
``GET  /api/egress``            the local host's counters (output messages per route, outcomes, codes)

It binds to loopback by default and answers only requests whose ``Host`` names this server (DNS rebinding) and whose
``Origin``, when sent, is this server (a page elsewhere cannot make the browser replay the quarantine).
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from shared.doors.webhook import Reply, WebhookPolicy, decide_post, options_reply
from twinbridge.explorer.live import ChangeHub, ChangePoller, from_notification
from twinbridge.explorer.local import LocalRun, LocalRunError
from twinbridge.explorer.source import AdtSource, SourceError

log = logging.getLogger("twinbridge.explorer")

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
REPO = HERE.parents[1]
CYTOSCAPE = Path("node_modules") / "cytoscape" / "dist" / "cytoscape.min.js"
MAX_QUERY = 8000  # characters; ADT refuses longer queries itself, this only bounds what we forward
MAX_BODY = 4 * 1024 * 1024
NOTIFICATIONS_POLICY = WebhookPolicy(max_body_bytes=MAX_BODY)  # any subscription; Retry-After unused (no 503s)


def cytoscape_path(root: Path = REPO) -> Path | None:
    path = root / CYTOSCAPE
    return path if path.is_file() else None


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, default=str), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


def _error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"status": status, "code": code, "message": message}}, status)


def _reply(reply: Reply) -> Response:
    """The webhook door's answer as an HTTP response."""
    return Response(reply.body_bytes(), status=reply.status, headers={"Cache-Control": "no-store", **reply.headers},
                    mimetype="application/json" if reply.body is not None else None)


class ExplorerApp:
    def __init__(self, source: AdtSource, hub: ChangeHub, local: LocalRun, live_mode: str = "auto",
                 allowed_hosts: set[str] | None = None) -> None:
        self.source = source
        self.hub = hub
        self.local = local
        self.live_mode = live_mode
        self.allowed_hosts = allowed_hosts  # None: any Host header (bound to a non-loopback address on purpose)
        self.poller: ChangePoller | None = None
        # the instance's host name: the source of notifications in Event Grid schema (shared.wiring.adt_instance)
        self.instance = urlparse(source.url).netloc or None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except _Refused as exc:
            response = exc.response
        except SourceError as exc:
            response = _json(exc.to_data(), exc.status if 400 <= exc.status < 600 else 502)
        except LocalRunError as exc:
            response = _error(409, exc.code, exc.message)
        except Exception as exc:  # a bug here: keep serving, say what broke
            log.exception("explorer error on %s %s", request.method, request.path)
            response = _error(500, type(exc).__name__, str(exc))
        return response(environ, start_response)

    def _forbidden(self, request: Request) -> Response | None:
        host = (request.host or "").lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return _error(403, "HostNotAllowed", f"this explorer answers to {sorted(self.allowed_hosts)}")
        origin = request.headers.get("Origin")
        if origin and request.method not in ("GET", "HEAD") and urlparse(origin).netloc.lower() != host:
            return _error(403, "CrossOrigin", "requests from other origins are refused")
        return None

    def dispatch(self, request: Request) -> Response:
        denied = self._forbidden(request)
        if denied is not None:
            return denied
        path = request.path
        method = request.method
        if path in ("/", "/index.html") and method in ("GET", "HEAD"):
            return self.static("index.html")
        if path.startswith("/static/") and method in ("GET", "HEAD"):
            return self.static(path.removeprefix("/static/"))
        if path == "/vendor/cytoscape.js" and method in ("GET", "HEAD"):
            found = cytoscape_path()
            if found is None:
                return _error(404, "CytoscapeMissing", f"{CYTOSCAPE} is missing: run `make install`")
            return Response(found.read_bytes(), mimetype="text/javascript", headers={"Cache-Control": "max-age=3600"})
        if not path.startswith("/api/"):
            return _error(404, "NotFound", path)
        return self.api(request, path.removeprefix("/api/"), method)

    def api(self, request: Request, path: str, method: str) -> Response:
        if path == "info" and method == "GET":
            return _json(self.info())
        if path == "graph" and method == "GET":
            return _json(self.source.graph())
        if path.startswith("twins/") and method == "GET":
            twin_id = path.removeprefix("twins/")
            found = self.source.twin(twin_id)
            if found is None:
                return _error(404, "DigitalTwinNotFound", f"no twin {twin_id!r}")
            return _json(found)
        if path == "models" and method == "GET":
            return _json({"value": self.source.models()})
        if path == "query" and method == "POST":
            return self.query(_body(request))
        if path == "events" and method == "GET":
            return Response(self.hub.stream(), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}, direct_passthrough=True)
        if path == "notifications":
            return self.notifications(request)
        if path == "quarantine" and method == "GET":
            return _json({"value": self.local.quarantine()})
        if path == "quarantine/replay" and method == "POST":
            return self.replay(_body(request))
        if path == "egress" and method == "GET":
            return _json(self.local.stats())
        return _error(404 if method in ("GET", "POST") else 405, "NotFound", f"{method} /api/{path}")

    def query(self, body: dict[str, Any]) -> Response:
        query = body.get("query")
        token = body.get("continuationToken")
        if not isinstance(query, str) or not query.strip():
            return _error(400, "QueryMissing", "query: a non-empty string is required")
        if len(query) > MAX_QUERY:
            return _error(400, "QueryTooLong", f"query: at most {MAX_QUERY} characters")
        if token is not None and not isinstance(token, str):
            return _error(400, "ContinuationTokenInvalid", "continuationToken: a string or null")
        page = self.source.query_page(query, token)
        return _json({"value": page.items, "continuationToken": page.continuation_token,
                      "twinIds": sorted(_twin_ids(page.items))})

    def replay(self, body: dict[str, Any]) -> Response:
        ids = body.get("recordIds")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            return _error(400, "RecordIdsInvalid", "recordIds: a list of strings, or absent for all")
        return _json(self.local.replay(ids))

    def notifications(self, request: Request) -> Response:
        """A webhook endpoint for an ADT event route (through Event Grid, or in CloudEvents schema): the handshakes,
        refusals and status codes are the app's webhook door's (shared/doors/webhook.py), so an event route that
        validates against the explorer validates against the app."""
        if request.method == "OPTIONS":  # CloudEvents abuse protection: WebHook-Allowed-Origin and -Rate
            return _reply(options_reply(dict(request.headers)))
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", request.method)
        if (request.content_length or 0) > MAX_BODY:  # refused before the body is read
            return _error(413, "BodyTooLarge", f"at most {MAX_BODY} bytes")
        decision = decide_post(dict(request.headers), request.get_data(), NOTIFICATIONS_POLICY)
        if isinstance(decision, Reply):
            return _reply(decision)
        accepted = 0
        for event in decision.events:
            change = from_notification(event, self.instance)
            if change is not None:
                self.hub.route_seen.set()
                self.hub.publish(change)
                accepted += 1
        return _json({"accepted": accepted, "ignored": len(decision.events) - accepted})

    def static(self, name: str) -> Response:
        path = (STATIC / name).resolve()
        if STATIC not in path.parents or not path.is_file():
            return _error(404, "NotFound", name)
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), mimetype=mimetype, headers={"Cache-Control": "no-cache"})

    def info(self) -> dict[str, Any]:
        poller = self.poller
        live = "route" if self.hub.route_seen.is_set() else ("poll" if poller is not None else "off")
        return {"adt": self.source.url, "liveMode": self.live_mode, "live": live,
                "pollErrors": poller.errors if poller else 0, "pollError": poller.last_error if poller else None,
                "counts": dict(self.hub.counts), "quarantine": self.local.settings is not None,
                "host": self.local.host, "cytoscape": cytoscape_path() is not None}


class _Refused(Exception):
    """A request refused before its handler runs (its body is not a JSON object): the answer to send instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _body(request: Request) -> dict[str, Any]:
    """The JSON object a POST carries; _Refused (415, 413, 400) if it is not one."""
    # JSON only: a cross-site form cannot send application/json without a CORS preflight, which we never allow.
    if request.mimetype != "application/json":
        raise _Refused(_error(415, "JsonRequired", "Content-Type must be application/json"))
    if (request.content_length or 0) > MAX_BODY:
        raise _Refused(_error(413, "BodyTooLarge", f"at most {MAX_BODY} bytes"))
    try:
        body = orjson.loads(request.get_data() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise _Refused(_error(400, "JsonInvalid", str(exc))) from None
    if not isinstance(body, dict):
        raise _Refused(_error(400, "JsonInvalid", "the body must be a JSON object"))
    return body


def _twin_ids(items: list[dict[str, Any]]) -> set[str]:
    """Twin ids in query results: ``$dtId`` at the top (SELECT *) or one level down (SELECT T, … with aliases)."""
    found: set[str] = set()
    for item in items:
        for value in (item, *[v for v in item.values() if isinstance(v, dict)]):
            if isinstance(value.get("$dtId"), str):
                found.add(value["$dtId"])
    return found


class RunningExplorer:
    def __init__(self, server: BaseWSGIServer, app: ExplorerApp) -> None:
        self.server = server
        self.app = app
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="explorer", daemon=True)

    @property
    def url(self) -> str:
        host = self.server.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.server.port}"

    def start(self) -> RunningExplorer:
        self.thread.start()
        if self.app.poller is not None:
            self.app.poller.start()
        return self

    def stop(self) -> None:
        self.app.hub.close()  # ends every event stream, so the server's threads can finish
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.app.local.close()
        self.app.source.close()


def _not_ready(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


def serve(source: AdtSource, local: LocalRun, *, port: int = 0, host: str = "127.0.0.1", live: str = "auto",
          poll_interval: float = 1.0) -> RunningExplorer:
    """Start the explorer on ``host:port`` (0 = a free port); ``live``: auto | route | poll | off."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    hub = ChangeHub()
    server = make_server(host, port, _not_ready, threaded=True)  # the app needs the port for its allowed Hosts
    loopback = host in ("127.0.0.1", "::1", "localhost")
    allowed = {f"{name}:{server.port}" for name in ("127.0.0.1", "localhost", "[::1]")} if loopback else None
    app = ExplorerApp(source, hub, local, live, allowed)
    server.app = app
    if live in ("auto", "poll"):
        app.poller = ChangePoller(lambda: source.etags(), lambda: iter(source.query_all(
            "SELECT * FROM RELATIONSHIPS", 100_000)[0]), hub, poll_interval, stop_when_routed=live == "auto")
    return RunningExplorer(server, app).start()
