"""Door: Event Grid's dead-letters → the quarantine (timer, every 5 minutes).

Event Grid writes an event it gave up on (retries exhausted, TTL passed, 400/413 from us) to the subscriptions'
dead-letter container (infra/main.json). Without this door those events sat there unseen; now each becomes a
``DEAD_LETTERED`` quarantine record that ``python -m twinbridge quarantine list|replay`` shows and replays
(shared/doors/dead_letters.py). A timer rather than a Blob trigger: it needs no extra trigger plumbing on Flex
Consumption, a run is bounded (``PER_RUN`` blobs), and a failed run leaves the blobs for the next one.

Settings: ``TWINBRIDGE_DEADLETTER_CONTAINER`` (default ``eventgrid-deadletter``, on ``AzureWebJobsStorage``), or
``TWINBRIDGE_DEADLETTER_DIR`` (a folder, as the local publisher writes) for local runs.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.runtime import current_app
from shared.doors.dead_letters import CollectReport, DeadLetterSource, collect

log = logging.getLogger("twinbridge.deadletters")

bp = func.Blueprint()
PER_RUN = 100
# Event Grid writes a dead-letter about 5 minutes after the last attempt: polling faster would gain little.
SCHEDULE = "0 */5 * * * *"


def run_once(source: DeadLetterSource | None = None) -> CollectReport:
    app = current_app()
    source = source if source is not None else app.dead_letters
    if source is None:
        return CollectReport()
    return collect(source, app.quarantine, PER_RUN)


@bp.function_name("collect_dead_letters")
@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=True)
def collect_dead_letters(timer: func.TimerRequest) -> None:
    report = run_once()
    if report.blobs:
        log.warning("%s", report.line())
