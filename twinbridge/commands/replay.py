"""``python -m twinbridge replay EVENTS``: run a recorded stream through the real pipeline, locally.

The same pipeline as the doors, against a fresh embedded twin graph and in-memory state, with a simulated
broker: events that fail transiently are redelivered after the rest of the stream, up to ``--max-attempts``
deliveries. Input is streamed element by element (a JSON array, JSON Lines, or one event object; pretty-printed or
not; with or without a UTF-8 BOM: twinbridge/streams.py), so memory does not grow with the stream's length, and an
element that is not JSON is quarantined (MALFORMED_JSON, path "line N") while the rest goes on.
Exit status: 0 when the stream was processed (quarantined events included), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from shared.adapters.quarantine.local import JsonlQuarantine, MemoryQuarantine
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.errors import Code, ConfigError, PermanentError
from shared.outcome import Outcome
from shared.ports import Quarantine
from shared.settings.environment import Settings
from shared.twins.pipeline import Pipeline
from shared.wiring import build_pipeline, embedded_twin_store, load_catalog, load_config
from twinbridge.streams import Unparsable, read_events

PROGRESS_EVERY = 100_000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("replay", help="run a recorded event stream through the pipeline locally",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", help="JSON array or JSON Lines of Event Grid events (either schema)")
    parser.add_argument("--config", help="app config (YAML/JSON); default: TWINBRIDGE_CONFIG or built-in defaults")
    parser.add_argument("--batch-size", type=int, default=100, help="events per pipeline batch (default 100)")
    parser.add_argument("--twins-out", help="write the final twins here, as a JSON array sorted by $dtId")
    parser.add_argument("--quarantine-out", help="write quarantine records here, as JSON Lines")
    parser.add_argument("--max-attempts", type=int, default=5, help="deliveries per event before giving up")
    parser.add_argument("--allow-topic", action="append", default=[], metavar="TOPIC",
                        help="add an allowed IoT Hub topic (resource id); repeatable")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    parser.add_argument("--verbose", action="store_true", help="log every quarantined event and batch (stderr)")
    parser.set_defaults(handler=run)


def build_replay(args: argparse.Namespace) -> tuple[Pipeline, EmbeddedTwinStore, Quarantine]:
    settings = Settings.from_env()
    if args.config:
        settings = dataclasses.replace(settings, config_path=args.config)
    config = load_config(settings)
    if args.allow_topic:
        config = config.model_copy(update={"topics": [*config.topics, *args.allow_topic]})
    catalog = load_catalog(settings, config)
    twins = embedded_twin_store(catalog)
    quarantine: Quarantine = JsonlQuarantine(args.quarantine_out) if args.quarantine_out else MemoryQuarantine()
    pipeline = build_pipeline(config, twins, catalog=catalog, quarantine=quarantine)
    return pipeline, twins, quarantine


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.max_attempts < 1:
        print("replay: --batch-size and --max-attempts must be at least 1", file=sys.stderr)
        return 2
    if not Path(args.events).is_file():
        print(f"replay: no such file: {args.events}", file=sys.stderr)
        return 2
    # The summary says it all; per-event warnings only on request.
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("twinbridge").setLevel(logging.INFO if args.verbose else logging.ERROR)
    if args.quarantine_out:
        Path(args.quarantine_out).unlink(missing_ok=True)  # a fresh run writes a fresh file
    try:
        pipeline, twins, _ = build_replay(args)
    except (ConfigError, ValueError) as exc:  # FilterError and QuerySyntaxError are ValueErrors
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    if not pipeline.config.topics:
        print("replay: warning: no allowed topics (config 'topics', TWINBRIDGE_ALLOWED_TOPICS or --allow-topic): "
              "every event will be quarantined as TOPIC_NOT_ALLOWED", file=sys.stderr)

    totals: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    redeliver: list[tuple[Any, int | None, int]] = []  # (event, size, deliveries so far)
    started = time.perf_counter()
    seen = 0

    def deliver(batch: list[tuple[Any, int | None, int]]) -> None:
        report = pipeline.process([e for e, _, _ in batch], [s for _, s, _ in batch])
        for (event, size, attempts), result in zip(batch, report.results, strict=True):
            if result.outcome is Outcome.RETRY and attempts + 1 < args.max_attempts:
                redeliver.append((event, size, attempts + 1))
                totals["retried"] += 1
                continue
            totals[result.outcome.value] += 1
            if result.code:
                codes[result.code] += 1

    batch: list[tuple[Any, int | None, int]] = []
    for item, size in read_events(args.events):
        seen += 1
        if isinstance(item, Unparsable):
            pipeline.reject(item.text, PermanentError.at(Code.MALFORMED_JSON, f"line {item.line}", item.error))
            totals[Outcome.QUARANTINED.value] += 1
            codes[Code.MALFORMED_JSON.value] += 1
            continue
        batch.append((item, size, 0))
        if len(batch) >= args.batch_size:
            deliver(batch)
            batch = []
        if not args.quiet and seen % PROGRESS_EVERY == 0:
            rate = seen / (time.perf_counter() - started)
            print(f"replay: {seen:,} events read ({rate:,.0f}/s)", file=sys.stderr)
    if batch:
        deliver(batch)
    # The simulated broker: what failed transiently comes again after the rest of the stream.
    while redeliver:
        pending, redeliver[:] = list(redeliver), []
        for i in range(0, len(pending), args.batch_size):
            deliver(pending[i:i + args.batch_size])

    elapsed = time.perf_counter() - started
    final_twins = list(twins.list_twins())
    if args.twins_out:
        Path(args.twins_out).write_bytes(orjson.dumps(final_twins, option=orjson.OPT_INDENT_2) + b"\n")
    summary = ", ".join(f"{name} {totals.get(name, 0)}" for name in
                        ("applied", "stale", "duplicate", "filtered", "quarantined", "retry", "retried"))
    print(f"replay: {seen} events in {elapsed:.2f}s → {len(final_twins)} twins, "
          f"{pipeline.applier.writes} twin writes; {summary}")
    if codes and not args.quiet:
        print("replay: final codes: " + ", ".join(f"{c} {n}" for c, n in sorted(codes.items())))
    return 0

