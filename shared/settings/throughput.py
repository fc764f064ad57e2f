"""Settings of the Event Grid trigger's group commit and of the twin write pacer (docs/configuration.md).

Defaults for the pacer are Azure Digital Twins' documented rate limits (Learn, "Azure Digital Twins service limits",
https://learn.microsoft.com/azure/digital-twins/reference-service-limits): 10 create/update/delete operations per
second on one twin (not adjustable), 1,000 patch requests and 1,000 read requests per second per instance, 500
create/delete requests per second per instance. The instance figures are per *ADT instance*: with several Function
App instances writing to one ADT, divide them by the number of app instances (the pacer sees one process only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.settings.numbers import integer_setting, number_setting

ADT_TWIN_WRITES_PER_SECOND = 10.0  # create/update/delete on a single twin (and its relationships)
ADT_PATCHES_PER_SECOND = 1000.0  # patch requests per ADT instance
ADT_READS_PER_SECOND = 1000.0  # read requests per ADT instance
ADT_CREATES_DELETES_PER_SECOND = 500.0  # create/delete across all twins and relationships per ADT instance
GROUP_COMMIT_WINDOW_MS = 5.0  # quiet gap that closes a batch
GROUP_COMMIT_MAX_WAIT_MS = 250.0  # no event waits longer for its batch
GROUP_COMMIT_MAX_EVENTS = 5000  # Event Grid delivers at most 5,000 events per array (maxEventsPerBatch)


@dataclass(frozen=True, slots=True)
class ThroughputSettings:
    # --- group commit (ingest_iothub_events) ---------------------------------------------------------------------
    group_commit_window_ms: float = GROUP_COMMIT_WINDOW_MS  # TWINBRIDGE_GROUP_COMMIT_WINDOW_MS
    group_commit_max_wait_ms: float = GROUP_COMMIT_MAX_WAIT_MS  # TWINBRIDGE_GROUP_COMMIT_MAX_WAIT_MS
    group_commit_max_events: int = GROUP_COMMIT_MAX_EVENTS  # TWINBRIDGE_GROUP_COMMIT_MAX_EVENTS
    # --- write pacer (every door) --------------------------------------------------------------------------------
    write_pacer: str = "auto"  # TWINBRIDGE_WRITE_PACER: auto (on for Azure Digital Twins) | on | off
    twin_writes_per_second: float = ADT_TWIN_WRITES_PER_SECOND  # TWINBRIDGE_TWIN_WRITES_PER_SECOND
    patches_per_second: float = ADT_PATCHES_PER_SECOND  # TWINBRIDGE_ADT_PATCHES_PER_SECOND
    reads_per_second: float = ADT_READS_PER_SECOND  # TWINBRIDGE_ADT_READS_PER_SECOND
    creates_deletes_per_second: float = ADT_CREATES_DELETES_PER_SECOND  # TWINBRIDGE_ADT_CREATES_DELETES_PER_SECOND

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ThroughputSettings:
        window = number_setting(env, "TWINBRIDGE_GROUP_COMMIT_WINDOW_MS", GROUP_COMMIT_WINDOW_MS)
        max_wait = number_setting(env, "TWINBRIDGE_GROUP_COMMIT_MAX_WAIT_MS", max(GROUP_COMMIT_MAX_WAIT_MS, window),
                                  window)
        pacer = (env.get("TWINBRIDGE_WRITE_PACER", "").strip() or "auto").lower()
        if pacer not in ("auto", "on", "off"):
            raise ValueError(f"TWINBRIDGE_WRITE_PACER must be auto, on or off, got {pacer!r}")
        return cls(
            group_commit_window_ms=window,
            group_commit_max_wait_ms=max_wait,
            group_commit_max_events=integer_setting(env, "TWINBRIDGE_GROUP_COMMIT_MAX_EVENTS",
                                                    GROUP_COMMIT_MAX_EVENTS, 1),
            write_pacer=pacer,
            twin_writes_per_second=number_setting(env, "TWINBRIDGE_TWIN_WRITES_PER_SECOND",
                                                  ADT_TWIN_WRITES_PER_SECOND, 0.1),
            patches_per_second=number_setting(env, "TWINBRIDGE_ADT_PATCHES_PER_SECOND", ADT_PATCHES_PER_SECOND, 1),
            reads_per_second=number_setting(env, "TWINBRIDGE_ADT_READS_PER_SECOND", ADT_READS_PER_SECOND, 1),
            creates_deletes_per_second=number_setting(env, "TWINBRIDGE_ADT_CREATES_DELETES_PER_SECOND",
                                                      ADT_CREATES_DELETES_PER_SECOND, 1),
        )
