"""``python -m twinbridge filters export|check|bench`` — see docs/filters.md.

* ``export --config FILE --format arm|az``: the ``filters`` section of an app config as the ARM ``filter`` object
  (JSON on stdout) or as an ``az eventgrid event-subscription create`` command line; the routing query, when
  present, is printed too (stderr for ``arm`` so stdout stays valid JSON, a shell comment for ``az``).
* ``check --filter FILE EVENTS``: one line per event — ``<id>  PASS`` or ``<id>  REJECT  <reason>``. FILE is a
  subscription filter object or an app config with a ``filters`` section; EVENTS is a JSON array, one JSON event,
  or JSON Lines (``-`` reads stdin), in either event schema. Exit status 0 when the check ran, 2 on bad input.
* ``bench [--n N]``: evaluations per second of a realistic compiled 5-filter subscription and routing query.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from shared.filters.config import build_event_filter
from shared.filters.event_grid import FilterError, SubscriptionFilter
from shared.filters.iothub_query import QuerySyntaxError, RoutingQuery, compile_routing_query


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "filters",
        help="export, check and benchmark Event Grid subscription filters and IoT Hub routing queries",
        description="Event Grid subscription filters and the IoT Hub routing query, with Azure's semantics.",
    )
    sub = parser.add_subparsers(dest="filters_command", metavar="SUBCOMMAND")
    sub.required = True

    export = sub.add_parser("export", help="print the configured filters as an ARM filter object or az arguments")
    export.add_argument("--config", required=True, type=Path, help="app config file (YAML or JSON)")
    export.add_argument("--format", choices=("arm", "az"), default="arm")
    export.set_defaults(handler=_export)

    check = sub.add_parser("check", help="show which events pass a filter and which filter rejects the others")
    check.add_argument("--filter", required=True, type=Path, dest="filter_file",
                       help="subscription filter JSON/YAML, or an app config with a filters section")
    check.add_argument("events", help="JSON array, single JSON event or JSON Lines file ('-' = stdin)")
    check.set_defaults(handler=_check)

    bench = sub.add_parser("bench", help="evaluations per second of compiled filters")
    bench.add_argument("--n", type=int, default=300_000, help="evaluations per measurement (default 300000)")
    bench.set_defaults(handler=_bench)


# ---------------------------------------------------------------------------------------------------------------
# helpers


class _InputError(Exception):
    pass


def _load_document(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise _InputError(f"{path}: not valid YAML/JSON: {exc}") from None


def _filters_section(doc: Any, path: Path) -> Mapping[str, Any] | None:
    if doc is None:
        return None
    if not isinstance(doc, Mapping):
        raise _InputError(f"{path}: expected a mapping at the top level")
    section = doc.get("filters")
    if section is not None and not isinstance(section, Mapping):
        raise _InputError(f"{path}: 'filters' must be a mapping")
    return section


def _errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (_InputError, FilterError, QuerySyntaxError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


# ---------------------------------------------------------------------------------------------------------------
# export


@_errors
def _export(args: argparse.Namespace) -> int:
    section = _filters_section(_load_document(args.config), args.config) or {}
    event_filter = build_event_filter(section)
    subscription = (event_filter.subscription if event_filter else None) or SubscriptionFilter.from_dict({})
    query = event_filter.routing_query if event_filter else None
    if args.format == "arm":
        print(json.dumps(subscription.to_arm(), indent=2))
        if query is not None:
            print(f"IoT Hub routing query (Event Grid route condition): {query.to_text()}", file=sys.stderr)
        return 0
    command = ["az", "eventgrid", "event-subscription", "create", *subscription.to_az_args()]
    print(" \\\n    ".join(
        [shlex.join(command[:4]),
         '--name "$SUBSCRIPTION_NAME" --source-resource-id "$IOT_HUB_ID" --endpoint "$ENDPOINT"',
         *_az_lines(command[4:])]
    ))
    if query is not None:
        print(f"# IoT Hub routing query (Event Grid route condition): {query.to_text()}")
    return 0


def _az_lines(args: list[str]) -> list[str]:
    """Group ``--option values...`` so each option starts a continuation line."""
    lines: list[list[str]] = []
    for a in args:
        if a.startswith("--") and a[2:3].isalpha():
            lines.append([a])
        else:
            lines[-1].append(a)
    return [shlex.join(line) for line in lines]


# ---------------------------------------------------------------------------------------------------------------
# check


def _load_events(source: str) -> list[Any]:
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise _InputError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        events = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise _InputError(f"{source}:{lineno}: not JSON: {exc.msg}") from None
        return events
    return doc if isinstance(doc, list) else [doc]


@_errors
def _check(args: argparse.Namespace) -> int:
    doc = _load_document(args.filter_file)
    check: Callable[[Mapping[str, Any]], str | None]
    if isinstance(doc, Mapping) and "filters" in doc:
        event_filter = build_event_filter(_filters_section(doc, args.filter_file))
        check = event_filter.check if event_filter is not None else (lambda event: None)
    else:
        subscription = SubscriptionFilter.from_dict(doc)
        check = subscription.explain
    for n, event in enumerate(_load_events(args.events)):
        if not isinstance(event, Mapping):
            print(f"#{n}\tREJECT\tnot an event object")
            continue
        event_id = event.get("id", f"#{n}")
        reason = check(event)
        print(f"{event_id}\tPASS" if reason is None else f"{event_id}\tREJECT\t{reason}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# bench

BENCH_SUBSCRIPTION: dict[str, Any] = {
    "includedEventTypes": ["Microsoft.Devices.DeviceTelemetry"],
    "subjectBeginsWith": "devices/thermostat-",
    "advancedFilters": [
        {"operatorType": "NumberGreaterThan", "key": "data.body.temperature", "value": 20},
        {
            "operatorType": "StringIn",
            "key": "data.systemProperties.iothub-connection-device-id",
            "values": [f"thermostat-{i:02d}" for i in range(8)],
        },
        {"operatorType": "StringNotIn", "key": "data.properties.processingPath", "values": ["cold", "archive"]},
        {"operatorType": "IsNotNull", "key": "data.body.humidity"},
        {"operatorType": "NumberInRange", "key": "data.body.pressure", "values": [[900, 1100]]},
    ],
}
BENCH_QUERY = (
    "$body.temperature > 20 AND $connectionDeviceId <> 'thermostat-07' "
    "OR processingPath = 'hot' OR IS_DEFINED($twin.tags.alert)"
)


def bench_events(count: int = 64) -> list[dict[str, Any]]:
    """IoT Hub DeviceTelemetry events (Event Grid schema) of which roughly half pass BENCH_SUBSCRIPTION."""
    events = []
    for i in range(count):
        device = f"thermostat-{i % 10:02d}"
        events.append({
            "id": f"evt-{i}",
            "topic": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.DEVICES/IOTHUBS/HUB",
            "subject": f"devices/{device}",
            "eventType": "Microsoft.Devices.DeviceTelemetry",
            "eventTime": "2026-11-23T10:00:00.0000000Z",
            "dataVersion": "",
            "metadataVersion": "1",
            "data": {
                "body": {"temperature": 15 + (i * 7) % 15 + 0.5, "humidity": 40.25, "pressure": 1013 - i % 3},
                "properties": {"processingPath": "hot" if i % 4 else "cold"},
                "systemProperties": {
                    "iothub-content-type": "application/json",
                    "iothub-content-encoding": "utf-8",
                    "iothub-connection-device-id": device,
                    "iothub-connection-auth-method": '{"scope":"device","type":"sas","issuer":"iothub"}',
                    "iothub-connection-auth-generation-id": "637000000000000000",
                    "iothub-enqueuedtime": "2026-11-23T10:00:00.0000000Z",
                    "iothub-message-source": "Telemetry",
                },
            },
        })
    return events


def _rate(fn: Callable[[Any], Any], items: list[Any], n: int) -> float:
    rounds = max(1, n // len(items))
    start = time.perf_counter()
    for _ in range(rounds):
        for item in items:
            fn(item)
    return rounds * len(items) / (time.perf_counter() - start)


def _bench(args: argparse.Namespace) -> int:
    n = max(1, args.n)
    events = bench_events()
    subscription = SubscriptionFilter.from_dict(BENCH_SUBSCRIPTION)
    query: RoutingQuery = compile_routing_query(BENCH_QUERY)
    twin = {"tags": {"floor": 3}, "properties": {"desired": {}, "reported": {}}}
    data = [e["data"] for e in events]
    ce_events = [
        {"specversion": "1.0", "type": e["eventType"], "source": e["topic"], "id": e["id"], "subject": e["subject"],
         "time": e["eventTime"], "data": e["data"]}
        for e in events
    ]
    rows = [
        ("subscription filter, 5 advanced + type + subject, Event Grid schema", subscription.matches, events, n),
        ("subscription filter, 5 advanced + type + subject, CloudEvents schema", subscription.matches, ce_events, n),
        ("subscription filter, passing events only (all 7 checks run)", subscription.matches,
         [e for e in events if subscription.matches(e)], n),
        ("subscription filter explain() (reference closures)", subscription.explain, events, n // 2),
        ("routing query", lambda d: query.matches(d, twin), data, n // 2),
    ]
    passing = sum(map(subscription.matches, events))
    routed = sum(query.matches(d, twin) for d in data)
    print(f"{len(events)} IoT Hub telemetry events: {passing} pass the subscription filter, {routed} are routed")
    print(f"routing query: {query.to_text()}")
    for label, fn, items, count in rows:
        print(f"{label}: {_rate(fn, items, count):,.0f} evaluations/s")
    return 0
