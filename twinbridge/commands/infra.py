"""``python -m twinbridge infra params`` — the ARM parameters file for infra/main.json, from the app config.

The Event Grid subscription filter is computed exactly as ``filters export --format arm`` computes it (the
``filters`` section of the same config file the app loads), so what is deployed is what runs locally. Warnings go
to stderr when the deployed filter would let through event types the app then refuses (``event_types``), and when
a routing query is configured (IoT Hub applies it on its own Event Grid route, outside this template).

    python -m twinbridge infra params --config infra/app-config.yaml --iot-hub factory-hub \\
        --app-config-path infra/app-config.yaml [--deploy-event-subscription] [--out infra/main.parameters.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.filters.config import build_event_filter
from shared.filters.event_grid import FilterError, SubscriptionFilter
from shared.filters.iothub_query import QuerySyntaxError
from shared.settings.app_config import AppConfig

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("infra", help="deployment helpers for infra/main.json (ARM)",
                                   description="Deployment helpers for the ARM template in infra/ (docs/deploy.md).")
    sub = parser.add_subparsers(dest="infra_command", metavar="SUBCOMMAND")
    sub.required = True
    params = sub.add_parser("params", help="write the ARM parameters file (subscription filter from the config)")
    params.add_argument("--config", required=True, type=Path, help="the app config file (YAML or JSON)")
    params.add_argument("--iot-hub", required=True, help="name of the existing IoT Hub (same resource group)")
    params.add_argument("--iot-hub-location", help="the hub's region, when it differs from the resource group's")
    params.add_argument("--app-config-path", default="",
                        help="TWINBRIDGE_CONFIG as seen by the deployed app (path inside the published package)")
    params.add_argument("--name-prefix", help="resource name prefix (3-11 lower-case letters/digits)")
    params.add_argument("--deploy-event-subscription", action="store_true",
                        help="also create the Event Grid subscription (after the code is published)")
    params.add_argument("--always-ready", type=int, help="always-ready instances of ingest_iothub_events")
    params.add_argument("--adt-route-filter", help="ADT event route filter for egress (default: true)")
    params.add_argument("--out", type=Path, help="write here instead of stdout")
    params.set_defaults(handler=_params)


def subscription_filter(config: AppConfig) -> dict[str, Any]:
    """The ARM filter object, computed as ``filters export --format arm`` does from the ``filters`` section."""
    section = config.sections.get("filters") or {}
    event_filter = build_event_filter(section)
    subscription = (event_filter.subscription if event_filter else None) or SubscriptionFilter.from_dict({})
    return subscription.to_arm()


def _warnings(config: AppConfig, arm_filter: dict[str, Any]) -> list[str]:
    warnings = []
    allowed = set(config.event_types)
    included = arm_filter.get("includedEventTypes")
    if included is None:
        if len(allowed) < 5:
            warnings.append("the subscription filter has no includedEventTypes: Event Grid will deliver every IoT Hub "
                            f"event type and the app refuses those outside event_types {sorted(allowed)}")
    else:
        extra = sorted(set(included) - allowed)
        if extra:
            warnings.append(f"includedEventTypes {extra} are not in the config's event_types: the app will "
                            "quarantine them as EVENT_TYPE_NOT_ALLOWED")
    query = (config.sections.get("filters") or {}).get("routing_query")
    if isinstance(query, str) and query.strip():
        warnings.append("a routing query is configured: IoT Hub applies it to telemetry on its Event Grid route; "
                        "set it there too (docs/deploy.md): az iot hub message-route update --hub-name HUB "
                        f"--route-name RouteToEventGrid --condition {json.dumps(query)}")
    return warnings


def build_parameters(args: argparse.Namespace, config: AppConfig) -> dict[str, Any]:
    arm_filter = subscription_filter(config)
    values: dict[str, Any] = {
        "iotHubName": args.iot_hub,
        "appConfigPath": args.app_config_path,
        "eventSubscriptionFilter": arm_filter,
        "deployEventSubscription": bool(args.deploy_event_subscription),
    }
    optional = {"iotHubLocation": args.iot_hub_location, "namePrefix": args.name_prefix,
                "alwaysReadyInstances": args.always_ready, "adtRouteFilter": args.adt_route_filter}
    values.update({k: v for k, v in optional.items() if v is not None})
    return {"$schema": SCHEMA, "contentVersion": "1.0.0.0",
            "parameters": {name: {"value": value} for name, value in values.items()}}


def _params(args: argparse.Namespace) -> int:
    try:
        config = AppConfig.load(args.config)
        document = build_parameters(args, config)
    except (ConfigError, FilterError, QuerySyntaxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in _warnings(config, document["parameters"]["eventSubscriptionFilter"]["value"]):
        print(f"warning: {warning}", file=sys.stderr)
    text = json.dumps(document, indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
