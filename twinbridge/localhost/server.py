"""The HTTP side of the local host: Core Tools' URL contract on a threaded werkzeug server.

* ``POST /runtime/webhooks/eventgrid?functionName=NAME`` — Event Grid's webhook (``aeg-event-type`` header).
* ``/api/<route>`` — HTTP-triggered functions (methods, route parameters, function keys).
* ``POST /admin/functions/NAME`` with ``{"input": "..."}`` — timers and other non-HTTP triggers.
* ``GET /admin/host/status`` — readiness; ``GET /admin/twinbridge/stats`` — this host's counters (loopback only).
"""

from __future__ import annotations

import hmac
import inspect
import logging
import os
import threading
import typing
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
import orjson
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequest
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from twinbridge.localhost.functions import EVENT_GRID_TRIGGER, Invoker, LocalFunction
from twinbridge.localhost.settings_file import LocalSettings
from twinbridge.localhost.stats import HostStats

log = logging.getLogger("twinbridge.host")

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
EVENT_GRID_MAX_ARRAY = 5000  # Event Grid's maxEventsPerBatch upper bound

# Seconds a connection may wait on its client (each read and write of its socket) before it is dropped: a client
# that sends headers and then stalls, or keeps an idle connection open, must not hold a server thread forever.
# A stall inside the body is answered 408; inside the request line or headers the connection is just closed.
READ_TIMEOUT_SECONDS = 30.0


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


def _text(text: str, status: int) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def _worker_count() -> int:
    # The Python worker runs sync functions on a pool of PYTHON_THREADPOOL_THREAD_COUNT threads.
    configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else min(32, (os.cpu_count() or 1) + 4)


class LocalHostApp:
    """The WSGI application. ``functions`` comes from ``index_functions`` (lower-case names)."""

    def __init__(self, functions: dict[str, LocalFunction], settings: LocalSettings, invoker: Invoker,
                 stats: HostStats, route_prefix: str = "api") -> None:
        self.functions = functions
        self.settings = settings
        self.invoker = invoker
        self.stats = stats
        self.route_prefix = route_prefix.strip("/")
        self.pool = ThreadPoolExecutor(max_workers=_worker_count(), thread_name_prefix="invoke")
        # One thread per event of an array at most (threads start on demand): each only waits on the event loop.
        self.dispatch_pool = ThreadPoolExecutor(max_workers=EVENT_GRID_MAX_ARRAY, thread_name_prefix="dispatch")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HTTPException as exc:
            # werkzeug's own verdict on the request: ClientDisconnected (400) when the body ended before its
            # Content-Length, or when reading it failed — on the read timeout (serve()), which is 408. The
            # client's fault, not the host's: 4xx, never 500.
            if isinstance(exc.__cause__ or exc.__context__, TimeoutError):
                log.info("request %s %s: its body stalled past the read timeout", request.method, request.path)
                response = _text("the request body did not arrive in time (the host's read timeout)", 408)
            else:
                log.info("bad request %s %s: %s", request.method, request.path, exc.description)
                response = _text(f"bad request: {exc.description}", exc.code or 400)
        except Exception:  # a bug in the host itself: keep serving, say so
            log.exception("host error on %s %s", request.method, request.path)
            response = _text("local host error (see its log)", 500)
        finally:
            # werkzeug's Request keeps itself in environ["werkzeug.request"]: a reference cycle per request that
            # holds the cached body (up to 1 MB) until the cyclic collector runs. Break it now (issue 15 §3).
            environ.pop("werkzeug.request", None)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        lower = path.lower()
        if lower == "/runtime/webhooks/eventgrid":
            return self.event_grid(request)
        if lower.startswith("/admin/"):
            return self.admin(request, path)
        prefix = f"/{self.route_prefix}/" if self.route_prefix else "/"
        if lower.startswith(prefix) or (self.route_prefix and lower == f"/{self.route_prefix}"):
            return self.http(request, path[len(prefix):])
        if path == "/" and request.method in ("GET", "HEAD"):
            return _text("The twinbridge local Functions host is running.", 200)
        return _text("Not Found", 404)

    # ---- Event Grid webhook -----------------------------------------------------------------------------------
    def event_grid(self, request: Request) -> Response:
        name = request.args.get("functionName", "")
        function = self.functions.get(name.lower())
        if function is None or function.disabled or function.trigger_type != EVENT_GRID_TRIGGER:
            log.info("cannot find function: '%s', available function names: [%s]", name, ", ".join(
                f.name for f in self.functions.values() if f.trigger_type == EVENT_GRID_TRIGGER and not f.disabled))
            return _text(f"cannot find function: '{name}'", 404)
        denied = self._check_key(request, self.settings.system_keys("eventgrid_extension"))
        if denied is not None:
            return denied
        if request.method == "OPTIONS":  # CloudEvents webhook abuse protection handshake
            origin = request.headers.get("WebHook-Request-Origin")
            if origin:
                return Response(status=200, headers={"WebHook-Allowed-Origin": origin, "Allow": "POST"})
            return _text("missing WebHook-Request-Origin", 400)
        if request.method != "POST":
            return _text("Method Not Allowed", 405)
        kind = request.headers.get("aeg-event-type", "").lower()
        if kind == "unsubscribe":
            return Response(status=202)
        if kind not in ("notification", "subscriptionvalidation"):
            return _text("header 'aeg-event-type' is missing or not recognized", 400)
        try:
            body = orjson.loads(request.get_data())
        except orjson.JSONDecodeError as exc:
            return _text(f"request body is not JSON: {exc}", 400)
        events = body if isinstance(body, list) else [body]
        if kind == "subscriptionvalidation":
            first = events[0] if events and isinstance(events[0], dict) else {}
            data = first.get("data")
            code = data.get("validationCode") if isinstance(data, dict) else None  # data may be any JSON value
            if not isinstance(code, str) or not code:
                return _text("SubscriptionValidation event without data.validationCode", 400)
            log.info("Event Grid subscription validated for function '%s'", function.name)
            return _json({"validationResponse": code})
        return self._fan_out(function, events)

    def _fan_out(self, function: LocalFunction, events: list[Any]) -> Response:
        """One invocation per event, in parallel, as the host does for Python; any failure → 500 for the batch."""
        def one(event: Any) -> bool:
            try:
                decoded = event_grid_value(function, orjson.dumps(event).decode())
            except Exception as exc:  # the real host fails the invocation when binding fails
                log.warning("Executed 'Functions.%s' trigger=%s outcome=Failed (binding: %s: %s)", function.name,
                            function.trigger_type, type(exc).__name__, exc)
                self.stats.invocation(function.name, False)
                return False
            detail = f"id={event.get('id')}" if isinstance(event, dict) else ""
            return self.invoker.invoke(function, decoded, detail, raw=event).ok

        # The host starts every invocation of the array at once (docs/doors.md). The worker then runs sync functions
        # on its thread pool (self.pool's size) and async ones all together on its event loop; behind the real runtime
        # (RuntimeInvoker) the runtime does that itself.
        all_at_once = inspect.iscoroutinefunction(function.user_function) or self.invoker.worker_schedules
        pool = self.dispatch_pool if all_at_once else self.pool
        results = list(pool.map(one, events))
        failed = results.count(False)
        if failed:
            return _text(f"{failed} of {len(events)} invocation(s) failed", 500)
        return Response(status=202)

    # ---- HTTP triggers ------------------------------------------------------------------------------------------
    def http(self, request: Request, route_path: str) -> Response:
        for function in self.functions.values():
            if not function.is_http or function.disabled or function.route is None:
                continue
            match = function.route.match(route_path)
            if match is None or (function.methods is not None and request.method not in function.methods):
                continue
            denied = self._check_key(request, self.settings.accepted_keys(function.name, function.auth_level))
            if denied is not None:
                return denied
            http_request = func.HttpRequest(
                request.method, request.url, headers=dict(request.headers), params=dict(request.args.items()),
                route_params={k: v for k, v in match.groupdict().items() if v is not None},
                body=request.get_data(),
            )
            outcome = self.invoker.invoke(function, http_request, f"{request.method} /{self.route_prefix}/{route_path}")
            if not outcome.ok:
                return _text("Internal Server Error", 500)
            named = [v for k, v in outcome.outputs.items() if isinstance(v, func.HttpResponse)]
            return _http_response(named[0] if named else outcome.result)
        return _text("Not Found", 404)

    # ---- admin ------------------------------------------------------------------------------------------------
    def admin(self, request: Request, path: str) -> Response:
        parts = path.strip("/").split("/")
        section = parts[1].lower() if len(parts) > 1 else ""
        if section == "host" and len(parts) == 3 and parts[2].lower() == "status":
            return _json({"state": "Running", "host": "twinbridge-local", "functions": sorted(
                f.name for f in self.functions.values() if not f.disabled)})
        if section == "twinbridge" and len(parts) == 3 and parts[2].lower() == "stats":
            if request.remote_addr not in _LOOPBACK:
                return _text("Forbidden: local clients only", 403)
            return _json(self.stats.snapshot())
        if section != "functions" or len(parts) != 3:
            return _text("Not Found", 404)
        denied = self._check_key(request, self.settings.admin_keys())
        if denied is not None:
            return denied
        function = self.functions.get(parts[2].lower())
        if function is None:
            return _text(f"function '{parts[2]}' not found", 404)
        if request.method != "POST":
            return _text("Method Not Allowed", 405)
        if function.is_http:
            return _text(f"'{function.name}' is an HTTP function: call /{self.route_prefix}/...", 400)
        try:
            payload = orjson.loads(request.get_data() or b"{}")
        except orjson.JSONDecodeError as exc:
            return _text(f"request body is not JSON: {exc}", 400)
        raw_input = payload.get("input", "") if isinstance(payload, dict) else ""
        text = raw_input if isinstance(raw_input, str) else orjson.dumps(raw_input).decode()
        try:
            value = trigger_value(function, text)
        except Exception as exc:  # bad input for this trigger's binding
            return _text(f"cannot bind input for {function.trigger_type}: {exc}", 400)
        outcome = self.invoker.invoke(function, value, "admin", raw=text)
        # Core Tools answers 202 before the function runs; this host runs it first so failures are visible.
        return Response(status=202) if outcome.ok else _text(f"invocation failed: {outcome.error}", 500)

    def _check_key(self, request: Request, keys: set[str] | None) -> Response | None:
        if keys is None:
            return None
        given = request.headers.get("x-functions-key") or request.args.get("code") or ""
        if any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
            return None
        return _text("Unauthorized: a function key is required (code=... or x-functions-key)", 401)


def event_grid_value(function: LocalFunction, raw: str) -> Any:
    """An Event Grid trigger argument as the worker builds it: a ``str``/``bytes`` parameter gets the JSON text
    through the generic binding (no converter); any other gets azure.functions' Event Grid converter."""
    annotation = function.trigger_annotation
    if annotation is str:
        return raw
    if annotation is bytes:
        return raw.encode()
    return EventGridEventInConverter.decode(Datum(raw, "json"), trigger_metadata=None)


def trigger_value(function: LocalFunction, raw: str) -> Any:
    """The trigger argument for an admin invocation, built the way the worker's converters would."""
    kind = function.trigger_type
    if kind == "timerTrigger":
        return TimerRequest(past_due=False)
    if kind == EVENT_GRID_TRIGGER:
        return event_grid_value(function, raw)
    if kind == "eventHubTrigger":
        event = func.EventHubEvent(body=raw.encode())
        many = (str(function.trigger.get("cardinality", "")).lower() == "many"
                or typing.get_origin(function.trigger_annotation) is list)
        return [event] if many else event
    return raw


def _http_response(result: Any) -> Response:
    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers)
        if result.mimetype and "content-type" not in {k.lower() for k in headers}:
            headers["Content-Type"] = f"{result.mimetype}; charset={result.charset}"
        return Response(result.get_body(), status=result.status_code, headers=headers)
    if result is None:
        return Response(status=204)
    if isinstance(result, bytes | str):
        return Response(result, status=200)
    return _json(result)


class RunningHost:
    def __init__(self, server: BaseWSGIServer, app: LocalHostApp) -> None:
        self.server = server
        self.app = app
        self.thread = threading.Thread(target=server.serve_forever, name="local-host", daemon=True)
        self.on_stop: list[Callable[[], None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def start(self) -> RunningHost:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.app.pool.shutdown(wait=True)
        self.app.dispatch_pool.shutdown(wait=True)
        for callback in self.on_stop:
            callback()


def serve(app: LocalHostApp, port: int, host: str = "127.0.0.1",
          read_timeout: float = READ_TIMEOUT_SECONDS) -> RunningHost:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per invocation is ours, not per request

    class TimedHandler(WSGIRequestHandler):
        timeout = read_timeout  # socketserver sets it on each accepted connection (StreamRequestHandler.setup)

    server = make_server(host, port, app, threaded=True, request_handler=TimedHandler)
    return RunningHost(server, app).start()
