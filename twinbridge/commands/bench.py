"""``python -m twinbridge bench``: the performance figures of docs/performance.md, measured now, on this machine.

A seeded workload of Event Grid IoT Hub events (raw JSON bytes: ~90 % JSON telemetry, 5 % base64 telemetry, 5 %
lifecycle and connection events) through the real ``Pipeline`` (embedded twin graph, memory state). Measurement is
pinned to one CPU core where the OS allows it. ``--replay-rss N`` instead measures the peak RSS of replaying N events.
The full run also measures the peak RSS of the Event Grid trigger door (the local host in a child process) over
``--large-events`` events of 950 KB (twinbridge/bench/large_events.py; target 300 MB); ``--large-events 0`` skips
it, ``--large-only`` measures only that.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

import orjson

from shared.settings.environment import Settings
from shared.settings.gc_tuning import tune_gc
from shared.twins.pipeline import DEFAULT_MAX_CONCURRENCY
from twinbridge.bench import measure, trigger


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="measure the pipeline (docs/performance.md)", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events through the core pipeline (100000)")
    parser.add_argument("--devices", type=int, default=100, help="distinct devices / twins (100)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per pipeline batch (1000)")
    parser.add_argument("--adt-latency-ms", type=float, default=20.0, help="fake ADT round trip per call (20)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY,
                        help=f"twins written at once (TWINBRIDGE_MAX_CONCURRENCY; {DEFAULT_MAX_CONCURRENCY})")
    parser.add_argument("--known-twins", type=int, default=Settings().known_twins,
                        help=f"remembered twins (TWINBRIDGE_KNOWN_TWINS; the app's default {Settings().known_twins}; "
                             "0 = a GET before every twin write)")
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive baseline (it takes ~L*events)")
    parser.add_argument("--replay-rss", type=int, metavar="N", help="only measure peak RSS of replaying N events")
    parser.add_argument("--core-only", action="store_true",
                        help="only the core pipeline's figures (the bench uses it for the pure-Python figure)")
    parser.add_argument("--large-events", type=int, default=1000, metavar="N",
                        help="950 KB events through the Event Grid trigger door for its peak RSS (1000; 0 skips)")
    parser.add_argument("--large-only", action="store_true", help="only the large-event peak RSS figure")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    trigger.register_args(parser)  # issue 19: Event Grid trigger door, hot twin, throttling
    parser.set_defaults(handler=run)


def _pin() -> str:
    if hasattr(os, "sched_setaffinity"):
        try:
            core = min(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {core})
            return f"pinned to CPU core {core} (os.sched_setaffinity)"
        except OSError as exc:
            return f"not pinned ({exc})"
    return "not pinned (no sched_setaffinity on this OS)"


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "orjson": orjson.__version__}


def run(args: argparse.Namespace) -> int:
    if min(args.events, args.devices, args.batch_size, args.concurrency) < 1 or args.known_twins < 0:
        print("bench: --events, --devices, --batch-size and --concurrency must be at least 1", file=sys.stderr)
        return 2
    pinning = _pin()
    if args.replay_rss:
        from twinbridge.bench.replay_rss import replay_rss

        replayed = {"pinning": pinning, **_machine(), **replay_rss(args.replay_rss, args.devices, args.seed,
                                                                  args.batch_size)}
        _print(replayed, args.json)
        return 0 if replayed["replay_exit_code"] == 0 else 1
    if args.large_only:
        large = {"pinning": pinning, **_machine(), **_large(args)}
        _print(large, args.json)
        return 0 if large.get("large_ok") else 1
    started = time.perf_counter()
    # First with Python's own collector settings, for comparison; then as the app runs (shared/settings/gc_tuning.py).
    untuned = None if args.core_only else measure.run_core(min(args.events, 30_000), args.devices, args.batch_size,
                                                           args.seed, args.concurrency, args.known_twins)
    thresholds = tune_gc(Settings.from_env().gc_gen0)
    core = measure.run_core(args.events, args.devices, args.batch_size, args.seed, args.concurrency, args.known_twins)
    eps = core.events / core.seconds
    floor = core.events / core.floor_seconds
    figures: dict[str, Any] = {
        "events": core.events, "devices": args.devices, "batch_size": args.batch_size,
        "concurrency": args.concurrency, "known_twins": args.known_twins,
        "seconds": round(core.seconds, 3), "events_per_s": round(eps), "us_per_event": round(1e6 / eps, 2),
        "parse_floor_events_per_s": round(floor), "ratio_to_floor": round(floor / eps, 2),
        "gc_threshold": list(thresholds),
        "events_per_s_python_gc": round(untuned.events / untuned.seconds) if untuned else None,
        "mean_event_bytes": round(core.bytes_total / core.events),
        "outcomes": dict(sorted(core.outcomes.items())),
        "adt_writes": core.adt_writes, "adt_writes_per_event": round(core.adt_writes / core.events, 4),
    }
    if args.core_only:
        _print(figures, args.json)
        return 0
    lat = measure.run_latency(args.batch_size, args.devices, args.adt_latency_ms, args.seed, args.concurrency,
                              args.known_twins, naive=not args.skip_naive)
    figures.update({
        "adt_latency_ms": args.adt_latency_ms, "latency_batch_events": lat.batch_events,
        "batch_wall_s": round(lat.batch_wall_s, 3), "batch_adt_calls": lat.batch_adt_calls,
        "batch_cold_wall_s": round(lat.batch_cold_wall_s, 3),
        "naive_batch_wall_s": round(lat.naive_batch_wall_s, 3) if lat.naive_batch_wall_s else None,
        "naive_adt_calls": lat.naive_adt_calls,
        "speedup_vs_naive": round(lat.naive_batch_wall_s / lat.batch_wall_s, 1) if lat.naive_batch_wall_s else None,
    })
    try:
        evals, share = measure.run_filter(args.events, args.devices, args.seed)
        figures.update({"filter_evals_per_s": round(evals), "filter_match_share": round(share, 3),
                        "filter": "compiled SubscriptionFilter: includedEventTypes, subjectBeginsWith, "
                                  "3 advanced (NumberLessThan, StringIn, BoolEquals)"})
    except ImportError:
        figures["filter_evals_per_s"] = None
        figures["filter"] = "shared.filters.event_grid is not available"
    figures.update(trigger.figures(args, measure.catalog()))
    figures["peak_rss_mb"] = round(measure.peak_rss_mb(), 1)
    if args.large_events > 0:
        figures.update(_large(args))
    figures["bench_wall_s"] = round(time.perf_counter() - started, 1)
    figures["pinning"] = pinning
    figures.update(_machine())
    _print(figures, args.json)
    return 0


def _large(args: argparse.Namespace) -> dict[str, Any]:
    from twinbridge.bench.large_events import large_event_rss

    figures = large_event_rss(args.large_events or 1000)
    peak = figures["large_peak_rss_mb"]
    figures["large_ok"] = (peak is not None and peak <= figures["large_target_peak_rss_mb"]
                           and set(figures["large_http_statuses"]) == {"202"})
    return figures


def _print(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
        return
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        print(f"{key:<{width}}  {text}")
