"""Door: the periodic registry reconcile (timer, ``%RECONCILE_SCHEDULE%``), see shared/reconcile/decisions.py.

``use_monitor`` keeps the schedule across restarts (a missed run happens once the host is back); runs never
overlap because the timer trigger holds a singleton lock. The registry client is built on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from functions.runtime import current_app
from shared.egress.ports import ForwardingStore
from shared.ingest.timeparse import TICKS_PER_SECOND
from shared.ports import ExpiringStateStore
from shared.reconcile.decisions import ReconcileOptions, Registry
from shared.reconcile.run import Reconciler, RunReport, utc_now_ticks
from shared.settings.doors import DoorSettings
from shared.settings.environment import Settings
from shared.wiring import App, build_forwarding_store

log = logging.getLogger("twinbridge.reconcile")

bp = func.Blueprint()

_registry: Registry | None = None


def options_from(app: App) -> ReconcileOptions:
    doors, conn = app.settings.doors, app.config.connection
    return ReconcileOptions(
        orphans=doors.reconcile_orphans, mark_property=doors.reconcile_mark_property,
        mark_value=doors.reconcile_mark_value, grace_ticks=doors.reconcile_grace_seconds * TICKS_PER_SECOND,
        connection_path=app.pipeline.mapper.connection_path,
        connection_values={True: conn.connected, False: conn.disconnected},
    )


def hub_name(doors: DoorSettings) -> str | None:
    """``myhub`` from ``myhub.azure-devices.net`` or from the connection string's HostName."""
    host = doors.iothub_host_name
    if doors.iothub_connection_string:
        parts = dict(p.split("=", 1) for p in doors.iothub_connection_string.split(";") if "=" in p)
        host = parts.get("HostName", host)
    return host.split(".", 1)[0] if host else None


def build_registry(doors: DoorSettings) -> Registry:
    from shared.adapters.registry.iothub import IotHubRegistry

    return IotHubRegistry.from_settings(doors.iothub_host_name, doors.iothub_connection_string)


def build_reconciler(app: App, registry: Registry, clock: Callable[[], int] = utc_now_ticks) -> Reconciler:
    doors = app.settings.doors
    return Reconciler(registry, app.twins, app.state, app.pipeline.applier, app.pipeline.mapper, app.checkpoints,
                      options_from(app), device_template=app.config.twin.device_id,
                      device_model=app.config.twin.device_model, hub_name=hub_name(doors),
                      page_size=doors.reconcile_page_size, clock=clock)


def run_once(registry: Registry | None = None, clock: Callable[[], int] = utc_now_ticks) -> RunReport:
    global _registry
    app = current_app()
    if registry is None:
        if _registry is None:
            _registry = build_registry(app.settings.doors)
        registry = _registry
    return build_reconciler(app, registry, clock).run(app.settings.doors.reconcile_max_devices)


@bp.function_name("reconcile_registry")
@bp.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def reconcile_registry(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("reconcile run is past due (the host was down at the scheduled time)")
    report = run_once()
    for action in report.actions:
        log.info("reconcile: %s", action.line())
    purged = purge_expired_state(current_app().state)
    if purged:
        log.info("housekeeping: %d expired tombstone record(s) removed from the state store", purged)
    forwarded = purge_forwarding_records(current_app().settings)
    if forwarded:
        log.info("housekeeping: %d expired egress forwarding record(s) removed", forwarded)


PURGE_PER_RUN = 100  # bounded, so a backlog is worked off over several runs rather than in one long invocation


_forwarding: ForwardingStore | None = None


def purge_forwarding_records(settings: Settings, limit: int = 10 * PURGE_PER_RUN) -> int:
    """Egress forwarding records past their retention (48 h), bounded per run. Only a shared store (Table Storage)
    needs it: Table Storage has no TTL, and a memory store already forgets as it goes, in its own process."""
    global _forwarding
    if settings.forwarding_store != "table":
        return 0
    if _forwarding is None:
        _forwarding = build_forwarding_store(settings)
    return _forwarding.purge(limit)


def purge_expired_state(state: object, limit: int = PURGE_PER_RUN) -> int:
    """Remove state records past their retention (≥ 25 h) when the store keeps any (Table Storage does)."""
    return state.purge_expired(limit=limit) if isinstance(state, ExpiringStateStore) else 0
