"""Start-up of the local host: settings → environment, the app (with counters), the function index, the server."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys
from pathlib import Path

import azure.functions as func
import orjson

from twinbridge.localhost.functions import Invoker, LocalFunction, OutputSinks, index_functions
from twinbridge.localhost.server import LocalHostApp, RunningHost, serve
from twinbridge.localhost.settings_file import LocalSettings
from twinbridge.localhost.stats import CountingEgress, CountingPipeline, HostStats

log = logging.getLogger("twinbridge.host")

APP_ROOT = Path(__file__).resolve().parents[2]

# get_functions() raises when called twice on one FunctionApp: index each app once per process.
_indexes: dict[int, tuple[func.FunctionApp, dict[str, LocalFunction]]] = {}


def indexed(app: func.FunctionApp) -> dict[str, LocalFunction]:
    cached = _indexes.get(id(app))
    if cached is None or cached[0] is not app:
        cached = (app, index_functions(app))
        _indexes[id(app)] = cached
    return cached[1]


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
                     with_app: bool = True) -> RunningHost:
    """Serve ``function_app`` (default: the real one) on ``host:port`` (0 = any free port)."""
    settings = LocalSettings.load(settings_path)
    settings.apply()
    stats = HostStats()
    if str(APP_ROOT) not in sys.path:
        sys.path.insert(0, str(APP_ROOT))
    if with_app:
        install_counting_app(stats)
    app = function_app if function_app is not None else load_function_app()
    functions = {key: dataclasses.replace(f, disabled=LocalSettings.disabled(f.name))
                 for key, f in indexed(app).items()}
    sinks = OutputSinks(Path(outputs_dir) if outputs_dir else APP_ROOT / ".run" / "host-outputs", stats)
    wsgi = LocalHostApp(functions, settings, Invoker(sinks, stats), stats, route_prefix())
    running = serve(wsgi, port, host)
    if with_app:
        running.on_stop.append(_forget_app)
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
