"""``python -m twinbridge host``: serve the Function App locally at Core Tools' URLs (no Core Tools needed)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinbridge.localhost.child import READY_LINE


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "host", help="run the Function App locally at the Functions host's URLs (Event Grid webhook, /api, /admin)",
        description="Serves the functions registered on function_app.app like `func start`: "
                    "POST /runtime/webhooks/eventgrid?functionName=NAME, /api/<route>, POST /admin/functions/NAME.")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: the settings file's Host.LocalHttpPort, else 7071; 0 = any free port)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--settings", default=None,
                        help="local.settings.json to load (default: ./local.settings.json when it exists)")
    parser.add_argument("--outputs", default=None,
                        help="folder for output-binding messages (default .run/host-outputs)")
    parser.add_argument("--read-timeout", type=float, default=None, metavar="SECONDS",
                        help="drop a connection whose client stalls this long (default 30)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("twinbridge.pipeline").setLevel(logging.WARNING)  # the host logs one line per invocation
    from twinbridge.localhost.runtime import HostRefused, describe, start_local_host
    from twinbridge.localhost.settings_file import LocalSettings

    settings_path = args.settings
    if settings_path is None and Path("local.settings.json").is_file():
        settings_path = "local.settings.json"
    port = args.port
    if port is None:
        port = LocalSettings.load(settings_path).port or 7071
    try:
        timeout = {} if args.read_timeout is None else {"read_timeout": args.read_timeout}
        running = start_local_host(settings_path=settings_path, port=port, host=args.bind, outputs_dir=args.outputs,
                                   **timeout)
    except HostRefused as exc:
        # The real worker would serve no function at all: neither does this host.
        print(f"Host refused to start: {exc}", file=sys.stderr, flush=True)
        return 1

    def announce() -> None:
        print("Functions:", *describe(running), sep="\n", flush=True)
        print(f"{READY_LINE}{running.url}", flush=True)  # what a parent waits for (localhost/child.py)

    try:
        wait_for_stop_signal(announce)
    finally:
        running.stop()
        print("Host stopped", flush=True)
    return 0


def wait_for_stop_signal(ready: Callable[[], None] | None = None) -> int:
    """Block until SIGTERM or SIGINT (Ctrl-C) and return which: how ``host``, ``explore`` and ``demo --explore``
    serve until stopped, each then stopping what it started. The handlers are in place before ``ready`` runs (it
    prints the line a parent waits for), so a parent that signals as soon as it reads that line is heard; the
    previous handlers come back afterwards."""
    received: list[int] = []
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        if ready is not None:
            ready()
        while not stop.wait(0.5):
            pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return received[0]
