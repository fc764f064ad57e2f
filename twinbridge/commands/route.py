"""``python -m twinbridge route NOTIFICATIONS --routes FILE [--show-output]`` — the egress dry run (docs/egress.md).

Reads ADT notifications (a JSON array, one JSON object, or JSON Lines; ``-`` reads stdin; Event Grid or
CloudEvents schema) and prints one JSON line per notification::

    {"id": …, "type": …, "subject": …, "routes": [names of the matching routes]}

followed, with ``--show-output``, by one line per message the routes would send
(``{"route", "message_id", "partition_key", "event"}`` — the same shape the ``file`` sink writes). An invalid
notification gets ``"routes": []`` and an ``"error": {code, path, message}``. No network: sinks are not built.
Exit status 0 when every notification was valid, 1 when some were not, 2 on a bad routes file or input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from shared.egress.config import EgressConfig, load_egress
from shared.egress.notifications import read_notification
from shared.egress.router import match
from shared.errors import ConfigError, PermanentError
from shared.settings.app_config import AppConfig


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "route",
        help="dry-run the egress routes on ADT notifications (which routes match, what they would send)",
        description="Which egress routes match each Azure Digital Twins notification. No network.",
    )
    parser.add_argument("notifications", help="JSON array, JSON object or JSON Lines file of notifications; - = stdin")
    parser.add_argument("--routes", required=True, type=Path, help="YAML/JSON file with endpoints and routes sections")
    parser.add_argument("--show-output", action="store_true", help="also print the transformed messages")
    parser.set_defaults(handler=run)


def read_items(text: bytes) -> list[Any]:
    """A JSON array, a single JSON value, or JSON Lines."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return [orjson.loads(line) for line in stripped.splitlines() if line.strip()]
    return whole if isinstance(whole, list) else [whole]


def load_routes(path: Path) -> EgressConfig:
    return load_egress(AppConfig.load(path).sections, str(path))


def _line(value: Any) -> str:
    return orjson.dumps(value).decode()


def run(args: argparse.Namespace) -> int:
    try:
        config = load_routes(args.routes)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        raw = sys.stdin.buffer.read() if args.notifications == "-" else Path(args.notifications).read_bytes()
        items = read_items(raw)
    except OSError as exc:
        print(f"cannot read {args.notifications}: {exc.strerror}", file=sys.stderr)
        return 2
    except orjson.JSONDecodeError as exc:
        print(f"{args.notifications}: not JSON or JSON Lines: {exc}", file=sys.stderr)
        return 2
    try:
        invalid = _print_all(config, items, args.show_output)
    except BrokenPipeError:  # `| head`: the reader has seen enough
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — silence the interpreter's flush at exit
        return 0
    return 1 if invalid else 0


def _print_all(config: EgressConfig, items: list[Any], show_output: bool) -> int:
    invalid = 0
    for item in items:
        try:
            notification = read_notification(item)
        except PermanentError as exc:
            invalid += 1
            fields = item if isinstance(item, dict) else {}
            print(_line({"id": fields.get("id"), "type": fields.get("type") or fields.get("eventType"),
                         "subject": fields.get("subject"), "routes": [],
                         "error": {"code": str(exc.code), "path": exc.path, "message": exc.message}}))
            continue
        names, messages = match(config, notification)
        print(_line({"id": notification.id, "type": notification.type, "subject": notification.cloudevent.get(
            "subject"), "routes": names}))
        if show_output:
            for m in messages:
                print(_line({"route": m.route, "message_id": m.message_id, "partition_key": m.partition_key,
                             "event": m.event}))
    return invalid
