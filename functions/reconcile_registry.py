"""Door: the periodic registry reconcile (timer, ``%RECONCILE_SCHEDULE%``), see shared/reconcile/decisions.py.

``use_monitor`` keeps the schedule across restarts (a missed run happens once the host is back); runs never
overlap because the timer trigger holds a singleton lock. The registry client and the forwarding store are the
app's (shared/wiring.py), built on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from functions.runtime import current_app
from shared.ports import ExpiringStateStore
from shared.reconcile.decisions import Registry
from shared.reconcile.run import RunReport, utc_now_ticks
from shared.wiring import App

log = logging.getLogger("twinbridge.reconcile")

bp = func.Blueprint()


def run_once(registry: Registry | None = None, clock: Callable[[], int] = utc_now_ticks) -> RunReport:
    app = current_app()
    return app.reconciler(registry, clock).run(app.settings.doors.reconcile_max_devices)


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
    forwarded = purge_forwarding_records(current_app())
    if forwarded:
        log.info("housekeeping: %d expired egress forwarding record(s) removed", forwarded)


PURGE_PER_RUN = 100  # bounded, so a backlog is worked off over several runs rather than in one long invocation


def purge_forwarding_records(app: App, limit: int = 10 * PURGE_PER_RUN) -> int:
    """Egress forwarding records past their retention (48 h), bounded per run. Only a shared store (Table Storage)
    needs it: Table Storage has no TTL, and a memory store already forgets as it goes, in its own process."""
    if app.settings.forwarding_store != "table":
        return 0
    return app.forwarding_store.purge(limit)


def purge_expired_state(state: object, limit: int = PURGE_PER_RUN) -> int:
    """Remove state records past their retention (≥ 25 h) when the store keeps any (Table Storage does)."""
    return state.purge_expired(limit=limit) if isinstance(state, ExpiringStateStore) else 0
