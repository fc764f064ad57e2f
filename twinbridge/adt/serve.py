"""``python -m twinbridge adt serve``: run the ADT emulator until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import orjson

WARNING = ("WARNING: the ADT emulator accepts ANY bearer token and authenticates nobody. It binds to loopback by "
           "default; binding it to another address exposes every twin to that network.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1, loopback only). " + WARNING)
    parser.add_argument("--port", type=int, default=0, help="TCP port (default 0: a free port, printed at start)")
    parser.add_argument("--db", default=None, help="SQLite file to persist the graph in (default: memory only)")
    parser.add_argument("--endpoints", default=None,
                        help="JSON file of the endpoints event routes deliver to: {\"name\": {\"kind\": \"webhook\", "
                             "\"url\": ..., \"schema\": \"eventgrid\"|\"cloudevents\"} or {\"kind\": \"jsonl\", "
                             "\"path\": ...}} (twinbridge/adt/endpoints.py; default: any endpoint name is accepted "
                             "and nothing is delivered)")
    parser.add_argument("--tls-dir", default=".run/adt-emulator/tls",
                        help="where the local CA is created on first start and kept (default .run/adt-emulator/tls)")
    parser.add_argument("--models", default=None, help="a directory of DTDL .json files to upload at start")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")


def load_endpoints(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from twinbridge.adt.endpoints import EndpointsError, load_endpoints_file

    try:
        return load_endpoints_file(path)
    except EndpointsError as exc:
        raise SystemExit(f"--endpoints {path}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from shared.adapters.twins.embedded import AdtError, TwinGraph
    from shared.adapters.twins.embedded.dtdl import iter_documents
    from twinbridge.adt.server import make_server
    from twinbridge.adt.tls import issue_server_certificate

    endpoints = load_endpoints(args.endpoints)
    graph = TwinGraph(args.db, endpoints=endpoints.keys() if endpoints is not None else None)
    if args.models:
        documents = iter_documents(orjson.loads(f.read_bytes()) for f in sorted(Path(args.models).glob("*.json")))
        pending = [d for d in documents if isinstance(d, dict) and not graph.registry.knows(str(d.get("@id")))]
        if pending:
            try:
                graph.add_models(pending)
            except AdtError as error:
                print(f"--models {args.models}: {error}", file=sys.stderr)
                return 2
    ca, cert, key = issue_server_certificate(Path(args.tls_dir), args.host)
    server = make_server(graph, args.host, args.port, cert, key, verbose=args.verbose)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{host}]" if ":" in host else host
    dispatcher = None
    if endpoints:
        from twinbridge.adt.endpoints import RouteDispatcher

        # source of the notifications: the instance's host name, as ADT's <name>.api.<region>.digitaltwins…
        dispatcher = RouteDispatcher(graph, endpoints, f"{shown}:{port}")
        server.RequestHandlerClass.emulator.status = dispatcher.snapshot  # type: ignore[attr-defined]
    print(f"ADT emulator listening on https://{shown}:{port} (CA certificate: {ca})", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(WARNING, file=sys.stderr, flush=True)
    stop = threading.Event()

    def shutdown(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
    server.server_close()
    if dispatcher is not None:
        dispatcher.close()
    graph.close()
    return 0
