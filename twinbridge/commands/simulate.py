"""``python -m twinbridge simulate``: a fleet of IoT Hub devices → a local Event Grid subscription → a webhook."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate", help="simulate IoT Hub devices and deliver their events like an Event Grid subscription",
        description="Publishes realistic IoT Hub events (lifecycle, connection flaps, JSON and base64 telemetry with "
                    "enrichments) through a local Event Grid publisher (filters, batching, retries, dead-letters) "
                    "to TARGET, e.g. http://127.0.0.1:7071/runtime/webhooks/eventgrid?functionName=NAME.")
    parser.add_argument("--target", required=True, help="webhook URL (the local host's, `func start`'s, or any)")
    parser.add_argument("--devices", type=int, default=10, help="number of devices (default 10)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--messages", type=int, help="total events to publish")
    amount.add_argument("--duration", type=float, help="seconds to publish for (default 10)")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second, whole fleet (default 50)")
    parser.add_argument("--schema", choices=("eventgrid", "cloudevents"), default="eventgrid",
                        help="delivery schema (a subscription file's eventDeliverySchema wins)")
    parser.add_argument("--subscription", help="event subscription JSON (filter, retryPolicy, maxEventsPerBatch)")
    parser.add_argument("--batch", type=int, help="maxEventsPerBatch (default: the subscription's, else 1)")
    parser.add_argument("--chaos", action="store_true", help="duplicate, reorder and delay deliveries")
    parser.add_argument("--seed", type=int, help="random seed (same seed, same events)")
    parser.add_argument("--faulty", type=float, default=0.0, help="share of telemetry with unreadable bodies")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="compress Event Grid's retry schedule (0.01: 10 s → 0.1 s)")
    parser.add_argument("--deadletter", default=".run/deadletter", help="dead-letter folder (default .run/deadletter)")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for pending deliveries")
    parser.add_argument("--concurrency", type=int, default=4, help="deliveries in flight at once (default 4)")
    parser.add_argument("--key", help="function/system key, sent as x-functions-key")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--retire", type=int, default=0, help="devices deleted at the end (DeviceDeleted)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from twinbridge.simulator.run import SimulationOptions, run_simulation

    options = SimulationOptions(
        target=args.target, devices=args.devices, messages=args.messages, duration=args.duration, rate=args.rate,
        schema=args.schema, subscription=args.subscription, batch=args.batch, chaos=args.chaos, seed=args.seed,
        faulty=args.faulty, time_scale=args.time_scale, deadletter_dir=args.deadletter,
        drain_timeout=args.drain_timeout, concurrency=args.concurrency, retire=args.retire,
        headers={"x-functions-key": args.key} if args.key else {},
    )
    result = run_simulation(options, progress=not args.quiet)
    for line in result.summary_lines():
        print(line)
    if result.stats.dead_lettered:
        print(f"dead-letters: {args.deadletter}/{result.subscription_name}/", file=sys.stderr)
    return 0 if result.drained else 1
