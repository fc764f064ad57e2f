"""The registered functions, indexed once, and how one of them is invoked with its bindings.

``FunctionApp.get_functions()`` may be called only once per app (a second call raises), so the index is built
once at start-up from each function's generated function.json — the same description the real host reads.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import threading
import time
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import orjson

from twinbridge.localhost.stats import HostStats

log = logging.getLogger("twinbridge.host")

HTTP_TRIGGER = "httpTrigger"
EVENT_GRID_TRIGGER = "eventGridTrigger"


class UnsupportedBinding(Exception):
    """A binding this host cannot provide (input bindings other than the trigger)."""


@dataclass
class LocalFunction:
    name: str
    trigger: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    user_function: Callable[..., Any]
    parameters: frozenset[str]
    disabled: bool = False
    route: re.Pattern[str] | None = None
    route_template: str = ""
    methods: frozenset[str] | None = None
    auth_level: str = "FUNCTION"

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def trigger_arg(self) -> str:
        return str(self.trigger["name"])

    @functools.cached_property
    def trigger_annotation(self) -> Any:
        """The trigger parameter's resolved annotation, read once per function (not per delivered event)."""
        return typing.get_type_hints(self.user_function).get(self.trigger_arg)

    @property
    def is_http(self) -> bool:
        return self.trigger_type == HTTP_TRIGGER


_PARAM = re.compile(r"\{(\*{0,2})([A-Za-z_]\w*)(?::([^}?=]+))?(\?)?(?:=[^}]*)?\}")


def _param_regex(star: str, name: str, constraint: str | None) -> str:
    if star:
        return f"(?P<{name}>.*)"
    if constraint and constraint.split("(")[0] in ("int", "long"):
        return rf"(?P<{name}>-?\d+)"
    return f"(?P<{name}>[^/]+)"


def compile_route(template: str) -> re.Pattern[str]:
    """ASP.NET-style route template → regex: ``{id}``, ``{id:int}``, ``{id?}``, ``{*rest}`` (case-insensitive)."""
    pattern = ""
    for i, segment in enumerate(template.strip("/").split("/")):
        sep = "" if i == 0 else "/"
        whole = _PARAM.fullmatch(segment)
        if whole is not None:
            star, name, constraint, optional = whole.groups()
            group = _param_regex(star, name, constraint)
            pattern += f"(?:{sep}{group})?" if star or optional else sep + group
            continue
        pieces, last = [], 0
        for m in _PARAM.finditer(segment):
            pieces.append(re.escape(segment[last:m.start()]) + _param_regex("", m.group(2), m.group(3)))
            last = m.end()
        pattern += sep + "".join(pieces) + re.escape(segment[last:])
    return re.compile(f"^{pattern}/?$", re.IGNORECASE)


def index_functions(app: func.FunctionApp, default_auth: str = "FUNCTION",
                    functions: list[Any] | None = None) -> dict[str, LocalFunction]:
    """name (lower-case, as the host matches them) → LocalFunction. ``functions``: the app's already fetched
    get_functions() (it may be called only once per app); else it is called here."""
    indexed: dict[str, LocalFunction] = {}
    for function in app.get_functions() if functions is None else functions:
        bindings = orjson.loads(function.get_function_json())["bindings"]
        entry = local_function(str(function.get_function_name()), bindings, function.get_user_function(), default_auth)
        indexed[entry.name.lower()] = entry
    return indexed


def local_function(name: str, bindings: list[dict[str, Any]], user: Callable[..., Any],
                   default_auth: str = "FUNCTION") -> LocalFunction:
    """One function from its binding JSON (function.json's ``bindings``)."""
    from twinbridge.localhost.settings_file import LocalSettings

    trigger = next(b for b in bindings
                   if str(b["type"]).endswith("Trigger") and str(b["direction"]).upper() == "IN")
    entry = LocalFunction(
        name=name, trigger=trigger,
        inputs=[b for b in bindings if str(b["direction"]).upper() == "IN" and b is not trigger],
        outputs=[b for b in bindings if str(b["direction"]).upper() == "OUT"],
        user_function=user, parameters=frozenset(inspect.signature(user).parameters),
        disabled=LocalSettings.disabled(name),
    )
    if entry.is_http:
        template = trigger.get("route") or name
        entry.route_template = template
        entry.route = compile_route(template)
        methods = trigger.get("methods")
        entry.methods = frozenset(m.upper() for m in methods) if methods else None
        entry.auth_level = str(trigger.get("authLevel") or default_auth).upper()
    return entry


class LocalOut(func.Out):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.value: Any = None

    def set(self, val: Any) -> None:
        self.value = val

    def get(self) -> Any:
        return self.value


class LocalContext(func.Context):
    def __init__(self, function: LocalFunction) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function.name
        self._tls = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return str(Path.cwd())

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


class OutputSinks:
    """Output bindings' messages, appended as JSON lines to ``<dir>/<function>.<binding>.jsonl``."""

    def __init__(self, directory: Path, stats: HostStats) -> None:
        self.directory = directory
        self._stats = stats
        self._lock = threading.Lock()

    def write(self, function: LocalFunction, binding: dict[str, Any], value: Any) -> None:
        values = value if isinstance(value, list) else [value]
        label = "return" if binding["name"] == "$return" else binding["name"]
        lines = b"".join(orjson.dumps({"time": datetime.now(UTC).isoformat(), "function": function.name,
                                       "binding": binding["name"], "type": binding["type"],
                                       "value": _plain(v)}) + b"\n" for v in values)
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.directory / f"{function.name}.{label}.jsonl", "ab") as out:
                out.write(lines)
        self._stats.output(f"{function.name}.{binding['type']}", len(values))


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, func.EventGridOutputEvent):
        return {"id": value.id, "subject": value.subject, "eventType": value.event_type,
                "data": value.get_json(), "dataVersion": value.data_version}
    if isinstance(value, str | int | float | bool | dict | list) or value is None:
        return value
    return str(value)


@dataclass
class Invocation:
    ok: bool
    result: Any = None
    error: BaseException | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


class Invoker:
    worker_schedules = False  # True: what it invokes through runs sync functions on its own pool (the real runtime)

    def __init__(self, sinks: OutputSinks, stats: HostStats) -> None:
        self.sinks = sinks
        self.stats = stats

    def invoke(self, function: LocalFunction, trigger_value: Any, detail: str = "", raw: Any = None) -> Invocation:
        """Call the user function once; outputs are written only when it succeeds (as the worker does). ``raw``:
        the trigger's input as it arrived (an Event Grid event dict, the admin input text), for invokers that bind
        it themselves (twinbridge/localhost/runtime.py's RuntimeInvoker)."""
        started = time.perf_counter()
        try:
            outcome = self._call(function, trigger_value, raw)
        except Exception as exc:  # the host reports every failure; the function's own error is the message
            outcome = Invocation(False, error=exc)
        elapsed = (time.perf_counter() - started) * 1000
        self.stats.invocation(function.name, outcome.ok)
        status = "Succeeded" if outcome.ok else f"Failed ({type(outcome.error).__name__}: {outcome.error})"
        log.info("Executed 'Functions.%s' trigger=%s%s duration=%.1fms outcome=%s", function.name,
                 function.trigger_type, f" {detail}" if detail else "", elapsed, status)
        return outcome

    def _call(self, function: LocalFunction, trigger_value: Any, raw: Any = None) -> Invocation:
        if function.inputs:
            kinds = ", ".join(sorted({b["type"] for b in function.inputs}))
            raise UnsupportedBinding(f"input bindings ({kinds}) are not provided by the local host")
        kwargs: dict[str, Any] = {function.trigger_arg: trigger_value}
        outs: dict[str, tuple[dict[str, Any], LocalOut]] = {}
        for binding in function.outputs:
            if binding["name"] != "$return":
                out = LocalOut()
                outs[binding["name"]] = (binding, out)
                kwargs[binding["name"]] = out
        if "context" in function.parameters and "context" not in kwargs:
            kwargs["context"] = LocalContext(function)
        result = function.user_function(**kwargs)
        if inspect.isawaitable(result):  # awaited on the one event loop, as the worker runs async functions
            result = asyncio.run_coroutine_threadsafe(_await(result), worker_loop()).result()
        for binding, out in outs.values():
            if out.value is not None:
                self.sinks.write(function, binding, out.value)
        returned = next((b for b in function.outputs if b["name"] == "$return"), None)
        if returned is not None and returned["type"] != "http" and result is not None:
            self.sinks.write(function, returned, result)
        return Invocation(True, result=result, outputs={k: o.value for k, (_, o) in outs.items()})


async def _await(awaitable: Any) -> Any:
    return await awaitable


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def worker_loop() -> asyncio.AbstractEventLoop:
    """The process's one event loop for ``async def`` functions, in a thread of its own: the Python worker runs
    every async invocation on its single loop, so they overlap there (and share per-process state such as the
    Event Grid door's group commit) instead of each getting a loop of its own."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="worker-event-loop", daemon=True).start()
        return _loop
