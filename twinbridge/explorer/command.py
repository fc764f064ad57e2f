"""``python -m twinbridge explore``: serve the explorer for an ADT instance (the emulator, or a real one)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_SETTINGS = Path(".run") / "demo" / "local.settings.json"

DESCRIPTION = """\
A browser explorer of the twins: graph, properties with their $metadata, relationships, live changes, ADT queries,
and (for a local run) the quarantined events with a replay button and the egress counters per route.

It reads twins through the ADT data-plane API with the Azure SDK, so --adt can be the local ADT emulator
(`python -m twinbridge adt serve`: pass its --ca file; any token is accepted there) or a real instance (a token from
DefaultAzureCredential: `az login` or a managed identity). Live changes come from an event route that delivers to
this explorer's POST /api/notifications; until one does, the twins are polled every --poll seconds.

The explorer binds to 127.0.0.1 and has no login: do not bind it to another address on a shared machine.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("explore", help="a browser explorer of the twins (graph, inspector, live, "
                                                   "queries, quarantine)", description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adt", default=None, help="ADT endpoint, e.g. https://127.0.0.1:PORT (default: $ADT_URL)")
    parser.add_argument("--ca", default=None,
                        help="CA certificate file to trust for --adt (the emulator's; default: $REQUESTS_CA_BUNDLE)")
    parser.add_argument("--credential", choices=("auto", "default", "static"), default="auto",
                        help="auto (default): a static token for a loopback --adt (the emulator), "
                             "DefaultAzureCredential otherwise")
    parser.add_argument("--port", type=int, default=8470, help="port to serve on (default 8470; 0 = any free port)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--settings", default=None,
                        help=f"the local run's local.settings.json, for its quarantine (default: {DEFAULT_SETTINGS} "
                             "when it exists)")
    parser.add_argument("--host", default=None, help="the local Functions host's URL, for its egress counters")
    parser.add_argument("--live", choices=("auto", "route", "poll", "off"), default="auto",
                        help="auto (default): poll until an event route delivers notifications; route: only the "
                             "route; poll: only polling; off: no live changes")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between change polls (default 1)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    from twinbridge.commands.host import wait_for_stop_signal
    from twinbridge.explorer.local import LocalRun
    from twinbridge.explorer.server import cytoscape_path, serve
    from twinbridge.explorer.source import AdtSource, credential_for

    url = args.adt or os.environ.get("ADT_URL")
    if not url:
        print("explore: no ADT endpoint: pass --adt URL (the emulator's, from `python -m twinbridge adt serve`) "
              "or set ADT_URL", file=sys.stderr)
        return 2
    if args.poll <= 0:
        print("explore: --poll must be positive", file=sys.stderr)
        return 2
    try:
        credential = credential_for(url, args.credential)
    except ValueError as exc:
        print(f"explore: {exc}", file=sys.stderr)
        return 2
    settings = args.settings or (str(DEFAULT_SETTINGS) if DEFAULT_SETTINGS.is_file() else None)
    source = AdtSource.connect(url, credential, args.ca or os.environ.get("REQUESTS_CA_BUNDLE"))
    running = serve(source, LocalRun(settings, args.host), port=args.port, host=args.bind, live=args.live,
                    poll_interval=args.poll)
    if cytoscape_path() is None:
        print("explore: node_modules/cytoscape is missing (run `make install`): the graph view will say so",
              file=sys.stderr)
    try:
        wait_for_stop_signal(lambda: print(
            f"Explorer listening on {running.url} (ADT {url}; quarantine {settings or 'off'}; "
            f"host {args.host or 'off'}; live {args.live})", flush=True))
    finally:
        running.stop()
        print("Explorer stopped", flush=True)
    return 0
