"""One reconcile run: bounded work, a resume point, every change through the applier.

The decisions are in shared/reconcile/decisions.py.

A run examines at most ``max_items`` registry devices and twins. It walks two phases and records where it
stopped in ``Checkpoints`` under ``reconcile`` after each completed page, so the next run resumes there:

1. ``registry`` — pages of ``SELECT * FROM devices`` (continuation token): create missing twins, correct
   connection state.
2. ``twins`` — device-model twins in id order after the last one checked: ask the registry which of their devices
   still exist; delete / mark / report the others.

A transient failure propagates (the timer run fails and shows in monitoring); the page it interrupted is simply
done again by the next run — every change is a freshness-ordered intent, so repeating one writes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.ingest.events import DEVICE_CREATED, IotHubEvent, Kind
from shared.ingest.mapping import Mapper
from shared.ingest.timeparse import parse_ticks
from shared.outcome import Outcome
from shared.ports import Checkpoints, StateStore, TwinStore
from shared.reconcile.decisions import Action, ReconcileOptions, Registry, plan_device, plan_orphan, twin_id_pattern
from shared.twins.applier import TwinApplier

log = logging.getLogger("twinbridge.reconcile")

CHECKPOINT = "reconcile"
EXISTENCE_CHUNK = 100  # device ids per registry existence query


def utc_now_ticks() -> int:
    return parse_ticks(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


@dataclass
class RunReport:
    actions: list[Action] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    devices: int = 0
    twins_checked: int = 0
    cycle_complete: bool = False
    resume: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        kinds = Counter(a.kind for a in self.actions)
        return {"devices": self.devices, "twins_checked": self.twins_checked, "actions": dict(kinds),
                "outcomes": dict(self.outcomes), "cycle_complete": self.cycle_complete, "resume": self.resume}


class Reconciler:
    def __init__(self, registry: Registry, twins: TwinStore, state: StateStore, applier: TwinApplier,
                 mapper: Mapper, checkpoints: Checkpoints, options: ReconcileOptions, *,
                 device_template: str, device_model: str, hub_name: str | None = None,
                 page_size: int = 100, clock: Callable[[], int] = utc_now_ticks) -> None:
        self.registry, self.twins, self.state, self.applier = registry, twins, state, applier
        self.mapper, self.checkpoints, self.options = mapper, checkpoints, options
        self.device_model = device_model
        self.hub_name = hub_name
        self.page_size = page_size
        self.clock = clock
        self._pattern = twin_id_pattern(device_template, hub_name)

    def run(self, max_items: int, *, dry_run: bool = False) -> RunReport:
        report = RunReport()
        saved = self.checkpoints.get(CHECKPOINT)
        resume: dict[str, Any] = orjson.loads(saved) if saved else {"phase": "registry", "token": None}
        budget = max_items
        while budget > 0:
            if resume.get("phase") == "twins":
                used, resume = self._twins_step(resume, budget, report, dry_run)
                if resume["phase"] == "registry" and resume.get("token") is None:
                    report.cycle_complete = True
            else:
                used, resume = self._registry_step(resume, budget, report, dry_run)
            budget -= used
            if not dry_run:
                self.checkpoints.put(CHECKPOINT, orjson.dumps(resume).decode())
            if report.cycle_complete or used == 0:
                break
        report.resume = resume
        log.info("reconcile%s: %s", " (dry run)" if dry_run else "", report.summary())
        return report

    # ---- phase 1: the registry -----------------------------------------------------------------------------------
    def _registry_step(self, resume: dict[str, Any], budget: int, report: RunReport,
                       dry_run: bool) -> tuple[int, dict[str, Any]]:
        now = self.clock()  # before the read: the page describes the registry at this moment or later
        page = self.registry.page(resume.get("token"), min(self.page_size, budget))
        for device in page.devices:
            target = self.mapper.target(_as_event(device.device_id, self.hub_name))
            twin = self.twins.get_twin(target.twin_id)
            loaded = self.state.load(target.twin_id)
            shadow = loaded[0] if loaded else None
            for action in plan_device(device, target.twin_id, target.model_id, twin, shadow, now, self.options):
                self._execute(action, report, dry_run)
        report.devices += len(page.devices)
        if page.continuation:
            return max(1, len(page.devices)), {"phase": "registry", "token": page.continuation}
        return max(1, len(page.devices)), {"phase": "twins", "after": None}

    # ---- phase 2: twins whose device is gone ---------------------------------------------------------------------
    def _twins_step(self, resume: dict[str, Any], budget: int, report: RunReport,
                    dry_run: bool) -> tuple[int, dict[str, Any]]:
        after = resume.get("after")
        candidates: list[tuple[str, str, dict[str, Any]]] = []
        for twin in self.twins.list_twins():
            twin_id = str(twin.get("$dtId"))
            if twin.get("$metadata", {}).get("$model") != self.device_model or (after is not None and twin_id <= after):
                continue
            match = self._pattern.fullmatch(twin_id)
            if match:
                candidates.append((twin_id, match.group("device"), twin))
        candidates.sort(key=lambda c: c[0])
        batch = candidates[: min(budget, EXISTENCE_CHUNK)]
        if not batch:
            return 0, {"phase": "registry", "token": None}
        now = self.clock()
        present = self.registry.existing([device for _, device, _ in batch])
        for twin_id, device_id, twin in batch:
            if device_id in present:
                continue
            loaded = self.state.load(twin_id)
            action = plan_orphan(twin, device_id, loaded[0] if loaded else None, now, self.options)
            if action is not None:
                self._execute(action, report, dry_run)
        report.twins_checked += len(batch)
        if len(batch) == len(candidates):
            return len(batch), {"phase": "registry", "token": None}
        return len(batch), {"phase": "twins", "after": batch[-1][0]}

    def _execute(self, action: Action, report: RunReport, dry_run: bool) -> None:
        report.actions.append(action)
        if dry_run or not action.intents:
            return
        decisions = self.applier.apply(action.twin_id, action.model_id, list(action.intents))
        for decision in decisions:
            report.outcomes[decision.outcome.value] += 1
            if decision.outcome is Outcome.QUARANTINED and decision.error is not None:
                log.error("reconcile %s of %s refused: %s", action.kind, action.twin_id, decision.error)


def _as_event(device_id: str, hub_name: str | None) -> IotHubEvent:
    """A stand-in event, so the twin id comes from the one mapping the events use."""
    return IotHubEvent(id="reconcile", topic="", subject=f"devices/{device_id}", event_type=DEVICE_CREATED,
                       kind=Kind.CREATED, event_ticks=0, device_id=device_id, hub_name=hub_name)
