"""Start-up of the local host: settings → environment, the app (with counters), the function index, the server."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import azure.functions as func
import orjson

from twinbridge.localhost.functions import (
    Invocation,
    Invoker,
    LocalFunction,
    OutputSinks,
    index_functions,
    local_function,
)
from twinbridge.localhost.indexing import check_app
from twinbridge.localhost.server import READ_TIMEOUT_SECONDS, LocalHostApp, RunningHost, serve
from twinbridge.localhost.settings_file import LocalSettings
from twinbridge.localhost.stats import CountingEgress, CountingPipeline, HostStats

log = logging.getLogger("twinbridge.host")

APP_ROOT = Path(__file__).resolve().parents[2]

# get_functions() raises when called twice on one FunctionApp: index each app once per process.
_indexes: dict[int, tuple[func.FunctionApp, dict[str, LocalFunction]]] = {}


class HostRefused(Exception):
    """The app would not load under the real runtime: the host does not start (message names function and why)."""


def indexed(app: func.FunctionApp) -> dict[str, LocalFunction]:
    """The app's functions after the worker's indexing checks (twinbridge/localhost/indexing.py): any refusal
    stops the host, as the real worker then serves no function at all."""
    cached = _indexes.get(id(app))
    if cached is None or cached[0] is not app:
        functions, refusals = check_app(app)
        if refusals:
            raise HostRefused("; ".join(str(r) for r in refusals))
        cached = (app, index_functions(app, functions=functions))
        _indexes[id(app)] = cached
    return cached[1]


def _through_runtime(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("invoked through azure-functions-runtime (RuntimeInvoker), never directly")


class RuntimeInvoker(Invoker):
    """Invocations through azure-functions-runtime: the trigger input is sent as the host sends it (TypedData),
    so the runtime's converters build the function's arguments and its invocation path calls it."""

    worker_schedules = True  # the runtime runs sync functions on its thread pool, async ones on its event loop

    def __init__(self, runtime: Any, sinks: OutputSinks, stats: HostStats) -> None:
        super().__init__(sinks, stats)
        self.runtime = runtime

    def _call(self, function: LocalFunction, trigger_value: Any, raw: Any = None) -> Invocation:
        rt, kind = self.runtime, function.trigger_type
        metadata: dict[str, Any] = {}
        if kind == "httpTrigger":
            req = trigger_value
            data = rt.http(req.method, req.url, dict(req.headers), req.get_body(), dict(req.params),
                           dict(req.route_params))
        elif kind == "eventGridTrigger":
            data = rt.json(raw if raw is not None else "{}")
        elif kind == "timerTrigger":
            data = rt.json({"Schedule": {"AdjustForDST": True}, "IsPastDue": False})
        elif kind == "eventHubTrigger":
            body = (raw or "").encode() if isinstance(raw, str | None) else bytes(raw)
            if str(function.trigger.get("cardinality", "")).lower() == "many":
                data = rt.collection_bytes([body])
                metadata = {"SystemPropertiesArray": rt.json([{}]), "PropertiesArray": rt.json([{}])}
            else:
                data = rt.bytes(body)
        else:
            data = rt.string(raw if isinstance(raw, str) else "")
        answer = rt.invoke(function.name, {function.trigger_arg: data}, metadata)
        if not answer.ok:
            raise RuntimeError(answer.error)
        result = answer.return_value
        if isinstance(result, dict) and "status" in result and kind == "httpTrigger":
            result = func.HttpResponse(result["body"] or None, status_code=result["status"], headers=result["headers"])
        for binding in function.outputs:
            value = answer.outputs.get(binding["name"])
            if value is not None:
                self.sinks.write(function, binding, value)
        return Invocation(True, result=result, outputs={})


def real_runtime_reason() -> str | None:
    """None when the host can run the app through azure-functions-runtime, else why not."""
    from twinbridge.localhost import real_runtime

    return real_runtime.available()


def load_function_app() -> func.FunctionApp:
    """The real ``function_app.app`` (imported after the settings are in the environment, as the worker does)."""
    if str(APP_ROOT) not in sys.path:
        sys.path.insert(0, str(APP_ROOT))
    module = importlib.import_module("function_app")
    return module.app  # type: ignore[no-any-return]


def route_prefix(root: Path = APP_ROOT) -> str:
    try:
        host = orjson.loads((root / "host.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return "api"
    prefix = ((host.get("extensions") or {}).get("http") or {}).get("routePrefix")
    return "api" if prefix is None else str(prefix)


def install_counting_app(stats: HostStats) -> None:
    """Build the twinbridge app from the (now loaded) environment and count its pipeline's outcomes."""
    from functions.runtime import use_app
    from shared.wiring import build_app, build_egress

    app = build_app()
    counted = dataclasses.replace(app, pipeline=CountingPipeline(app.pipeline, stats))  # type: ignore[arg-type]
    counted.__dict__["egress"] = CountingEgress(lambda: build_egress(counted), stats)  # the cached_property's slot
    use_app(counted)


def start_local_host(*, settings_path: str | Path | None = None, port: int = 7071, host: str = "127.0.0.1",
                     function_app: func.FunctionApp | None = None, outputs_dir: str | Path | None = None,
                     with_app: bool = True, read_timeout: float = READ_TIMEOUT_SECONDS) -> RunningHost:
    """Serve ``function_app`` (default: the real one) on ``host:port`` (0 = any free port); a connection whose
    client stalls for ``read_timeout`` seconds is dropped (server.READ_TIMEOUT_SECONDS)."""
    settings = LocalSettings.load(settings_path)
    settings.apply()
    stats = HostStats()
    if str(APP_ROOT) not in sys.path:
        sys.path.insert(0, str(APP_ROOT))
    if with_app:
        install_counting_app(stats)
    sinks = OutputSinks(Path(outputs_dir) if outputs_dir else APP_ROOT / ".run" / "host-outputs", stats)
    runtime: Any = None
    try:
        if function_app is None and real_runtime_reason() is None:
            # Python 3.13 with azure-functions-runtime: the runtime itself imports function_app.py, indexes it
            # (its own checks), loads and invokes every function, as in Azure.
            from twinbridge.localhost.real_runtime import RealRuntime, RuntimeRefused, binding_json

            runtime = RealRuntime(APP_ROOT)
            try:
                metadata = runtime.start()
            except RuntimeRefused as exc:
                raise HostRefused(str(exc)) from exc
            log.info("running through the real Functions runtime: %s", runtime.versions())
            functions = {name.lower(): local_function(name, binding_json(meta), _through_runtime)
                         for name, meta in metadata.items()}
            invoker: Invoker = RuntimeInvoker(runtime, sinks, stats)
        else:
            reason = real_runtime_reason() if function_app is None else "a custom FunctionApp was given"
            log.info("running without azure-functions-runtime (%s): the worker's indexing checks are applied, "
                     "functions are called in-process", reason)
            app = function_app if function_app is not None else load_function_app()
            functions = dict(indexed(app))
            invoker = Invoker(sinks, stats)
    except BaseException:
        if runtime is not None:
            runtime.close()
        if with_app:
            _forget_app()
        raise
    functions = {key: dataclasses.replace(f, disabled=LocalSettings.disabled(f.name)) for key, f in functions.items()}
    wsgi = LocalHostApp(functions, settings, invoker, stats, route_prefix())
    running = serve(wsgi, port, host, read_timeout)
    if with_app:
        running.on_stop.append(_forget_app)
    if runtime is not None:
        running.on_stop.append(runtime.close)
    return running


def _forget_app() -> None:
    from functions.runtime import use_app

    use_app(None)


def describe(running: RunningHost) -> list[str]:
    """Core Tools-style listing of what is served where."""
    lines = []
    app = running.app
    for f in sorted(app.functions.values(), key=lambda f: f.name):
        state = " (disabled)" if f.disabled else ""
        if f.is_http:
            methods = ",".join(sorted(f.methods)) if f.methods else "ALL"
            lines.append(f"  {f.name}: [{methods}] {running.url}/{app.route_prefix}/{f.route_template}{state}")
        elif f.trigger_type == "eventGridTrigger":
            lines.append(f"  {f.name}: eventGridTrigger → POST {running.url}/runtime/webhooks/eventgrid"
                         f"?functionName={f.name}{state}")
        else:
            lines.append(f"  {f.name}: {f.trigger_type} → POST {running.url}/admin/functions/{f.name}{state}")
    return lines
