"""``python -m twinbridge reconcile [--dry-run]``: one registry reconcile run from this machine.

The registry comes from IOTHUB_CONNECTION_STRING or IOTHUB_HOST_NAME (+ DefaultAzureCredential); twins, state and
config from the same settings the Function App uses. ``--dry-run`` prints the plan and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("reconcile", help="compare the IoT Hub registry with the twins and fix drift")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--max-devices", type=int, default=None,
                        help="registry devices and twins examined (default RECONCILE_MAX_DEVICES)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from functions.runtime import current_app

    app = current_app()
    doors = app.settings.doors
    try:
        registry = app.registry
    except ValueError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2
    report = app.reconciler(registry).run(args.max_devices or doors.reconcile_max_devices,
                                                 dry_run=args.dry_run)
    print(f"reconcile {'plan (dry run, nothing changed)' if args.dry_run else 'run'}: "
          f"{len(report.actions)} action(s)")
    for action in report.actions:
        print("  " + action.line())
    print(orjson.dumps(report.summary(), option=orjson.OPT_SORT_KEYS).decode())
    return 0
