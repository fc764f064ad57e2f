"""Apply one twin's intents from a batch: merge into the shadow, commit it, make the twin show it.

The protocol, and why it is safe with several instances and redeliveries:

1. Read the twin (its ETag), *then* the shadow. Merge the intents. Commit the shadow conditionally (insert, or
   replace if its etag still matches); on conflict start again. The shadow commit is the linearisation point.
2. Write the twin so it shows the *whole* shadow (not just this batch's part), conditionally on the ETag read in
   step 1. On 412 re-read the twin then the shadow and re-plan.

3. Make sure what was shown is still the latest: after a write, re-read the shadow and start step 2 again if
   anyone committed since our shadow read; after deciding there is nothing to write (having committed something),
   re-read the twin and start step 2 again if its ETag moved since our twin read.

Why step 3 exists. A stale writer B (its shadow S1 committed) and a newer writer A (S2 on top of S1): A reads the
twin, sees it already shows proj(S2) and writes nothing; B's patch with the same, unchanged ETag then succeeds and
shows proj(S1) — a regression the ETag alone cannot stop, because the newer writer made no write. With step 3, B
sees the shadow moved after its write and writes proj(S2); and if A read the twin before B's write but B checked
before A committed, A sees the ETag moved and writes proj(S2). Hence: after the last writer finishes, the twin shows
the latest shadow. Any commit made before a writer's shadow read is in its projection; any write made after its
twin read makes its conditional write fail (412 → re-read). A stale value can be visible between such a write and
its correction (a few milliseconds, only under a race on one twin), never at the end. A crash between the steps
leaves the shadow ahead of the twin; the redelivered batch merges nothing new but still writes the projection:
that is the repair. Applying a batch twice writes nothing the second time.

Known twins (saves the GET before each PATCH): the applier remembers, per twin, the content and ETag of the last
version it read or wrote itself, and uses that as the step-1 read. That is the same as having read the twin at
that moment — still before the shadow read — so the argument above holds unchanged: a write made by anyone since
then changed the ETag, our conditional write fails with 412 (or 404 if the twin went), and the retry reads the twin
for real. After our own successful write the remembered content is the old content with our patch applied, which
is exactly what the service holds under the new ETag. Anything unexpected forgets the twin. See docs/performance.md.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import Code, PermanentError, StateConflict, TransientError, TwinConflict, TwinMissing, TwinRejected
from shared.outcome import Outcome
from shared.ports import StateStore, TwinStore
from shared.settings.app_config import MissingTwinPolicy
from shared.twins.deadline import expired
from shared.twins.freshness import DELETED, Change, Intent, Shadow, merge, merge_all, undo
from shared.twins.isolation import Refusal, refused_fields
from shared.twins.patch_plan import TwinAction, desired_properties, dropped_paths, plan, wants_twin
from shared.twins.write_pacer import Superseded

log = logging.getLogger("twinbridge.apply")

MAX_ATTEMPTS = 5
KNOWN_TWINS = 0  # TwinApplier(known_twins=) when not given; the app passes TWINBRIDGE_KNOWN_TWINS (default 10,000)


@dataclass(slots=True)
class Decision:
    outcome: Outcome
    error: PermanentError | TransientError | None = None


# Decisions without an error, shared (never changed once made).
_DECIDED = {outcome: Decision(outcome) for outcome in Outcome}


@dataclass(slots=True)
class WriteTally:
    """Twin writes made for one caller (one batch), while other threads write other twins through the applier."""

    count: int = 0


@dataclass(frozen=True, slots=True)
class Projection:
    connection_path: tuple[str, ...] | None
    connection_values: dict[bool, str]
    policy: MissingTwinPolicy
    max_patch_bytes: int


class TwinApplier:
    def __init__(self, twins: TwinStore, state: StateStore, projection: Projection,
                 known_twins: int = KNOWN_TWINS) -> None:
        self.twins = twins
        self.state = state
        self.projection = projection
        self._writes = 0  # twin writes made (create, patch chunk, delete), for metrics and benchmarks
        self._writes_lock = threading.Lock()  # several twins may be applied at once (Pipeline's thread pool)
        self._known: OrderedDict[str, dict[str, Any]] = OrderedDict()  # twin id -> last content we saw/wrote
        self._known_limit = known_twins
        self._known_lock = threading.Lock()

    @property
    def writes(self) -> int:
        return self._writes

    def apply(self, twin_id: str, model_id: str, intents: list[Intent],
              tally: WriteTally | None = None) -> list[Decision]:
        """One decision per intent, in the order given. Raises TransientError (the whole group must come again).

        Thread-safe for *different* twins; ``tally`` counts this call's twin writes (also when it raises).
        """
        tally = tally if tally is not None else WriteTally()
        _check_budget(twin_id)
        decisions: list[Decision] = [_DECIDED[Outcome.STALE]] * len(intents)
        changes: list[Change] = []
        twin = None
        for attempt in range(MAX_ATTEMPTS):
            twin = self._read_twin(twin_id)
            shadow, etag = self._load(twin_id, model_id)
            changes = self._merge(shadow, intents, twin is not None, decisions)
            if not changes:
                break
            try:
                etag = self._save(shadow, etag)
                break
            except StateConflict:
                _back_off(attempt)
                continue
        else:
            raise TransientError(Code.CONFLICT_RETRIES_EXHAUSTED, f"state of {twin_id} kept changing under us")
        try:
            self._write(twin_id, model_id, twin, tally, known=(shadow, etag), committed=bool(changes))
        except TwinRejected as exc:
            decisions = self._refused(twin_id, model_id, intents, decisions, changes, exc, tally)
        return decisions

    def _refused(self, twin_id: str, model_id: str, intents: list[Intent], decisions: list[Decision],
                 changes: list[Change], exc: TwinRejected, tally: WriteTally) -> list[Decision]:
        """Digital Twins refused the write: quarantine exactly the events whose values it refuses (isolate.py)."""
        self._forget(twin_id)
        twin = self.twins.get_twin(twin_id)
        shadow, _ = self._load(twin_id, model_id)
        refusals = refused_fields(self.twins, twin_id, twin, shadow, _properties(shadow, self.projection),
                                  self.projection.connection_path, lambda: self._count(tally))
        if refusals is None:
            # The twin itself is refused (model not uploaded, id invalid): undo this batch, quarantine its events.
            self._revert(twin_id, model_id, changes)
            error = PermanentError.at(Code.TWIN_REJECTED, "", f"Digital Twins refused the write to {twin_id}: {exc}")
            result = [Decision(Outcome.QUARANTINED, error) if d.outcome is Outcome.APPLIED else d for d in decisions]
        else:
            self._drop(twin_id, model_id, refusals)
            by_event = {r.event_id: r for r in refusals}
            result = []
            for intent, decision in zip(intents, decisions, strict=True):
                refusal = by_event.get(intent.event_id)
                result.append(decision if refusal is None else Decision(Outcome.QUARANTINED, PermanentError.at(
                    Code.TWIN_REJECTED, _field_path(refusal.field),
                    f"Digital Twins refused {refusal.field} of {twin_id}: {refusal.reason}")))
            elsewhere = sorted(set(by_event) - {i.event_id for i in intents})
            if elsewhere:
                log.error("twin %s: refused value(s) from event(s) of another delivery dropped: %s", twin_id, elsewhere)
        self._write(twin_id, model_id, None, tally, tolerate_rejection=True)
        return result

    def _drop(self, twin_id: str, model_id: str, refusals: list[Refusal]) -> None:
        """Remove refused values from the state (only where the refused event's value is still the one held)."""
        def drop(shadow: Shadow) -> bool:
            dropped = False
            for refusal in refusals:
                mark = shadow.marks.get(refusal.field)
                if mark is not None and mark.event_id == refusal.event_id:
                    del shadow.marks[refusal.field]
                    dropped = True
            return dropped

        self._update_shadow(twin_id, model_id, drop, "drop refused values")

    def _merge(self, shadow: Shadow, intents: list[Intent], twin_exists: bool,
               decisions: list[Decision]) -> list[Change]:
        """Merge a twin's intents into ``shadow``, filling ``decisions``; the changes made (to undo them)."""
        changes: list[Change] = []
        # Lifecycle first, one by one (each can move the tombstone): a DeviceCreated later in the same batch must
        # count when deciding about telemetry. The rest in one pass, in batch order (merge_all).
        rest: list[int] = []
        for i, intent in enumerate(intents):
            if intent.lifecycle:
                outcome, made = merge(shadow, intent)
                decisions[i] = _DECIDED[outcome]
                changes.extend(made)
        for i, intent in enumerate(intents):
            if not intent.lifecycle:
                refusal = self._refuse_missing_twin(shadow, intent, twin_exists)
                if refusal is None:
                    rest.append(i)
                else:
                    decisions[i] = refusal
        outcomes, made = merge_all(shadow, [intents[i] for i in rest])
        for i, outcome in zip(rest, outcomes, strict=True):
            decisions[i] = _DECIDED[outcome]
        changes.extend(made)
        return changes

    def _refuse_missing_twin(self, shadow: Shadow, intent: Intent, twin_exists: bool) -> Decision | None:
        """Device data for a twin that must not be created (missing_twin: retry | quarantine): the decision."""
        policy = self.projection.policy
        if policy is MissingTwinPolicy.CREATE or wants_twin(shadow, twin_exists, MissingTwinPolicy.QUARANTINE):
            return None
        tombstone = shadow.tombstone_ticks
        if tombstone is not None and intent.ticks <= tombstone:
            return None  # older than the deletion: merged as stale
        # A deleted device that keeps talking is not "not ready yet": retrying would last the broker's whole
        # retry window (and block an Event Hubs partition). If it is re-created, its DeviceCreated will come.
        if policy is MissingTwinPolicy.RETRY and shadow.lifecycle != DELETED:
            return Decision(Outcome.RETRY, TransientError(Code.TWIN_NOT_READY,
                                                          f"twin {intent.twin_id} does not exist yet"))
        return Decision(Outcome.QUARANTINED, PermanentError.at(
            Code.TWIN_NOT_FOUND, "subject", f"twin {intent.twin_id} does not exist (missing_twin: quarantine)"))

    def _write(self, twin_id: str, model_id: str, twin: dict[str, object] | None, tally: WriteTally, *,
               known: tuple[Shadow, str | None] | None = None, committed: bool = True,
               tolerate_rejection: bool = False) -> None:
        """``known``: the shadow read (or committed) right after ``twin`` was read — the first attempt plans
        from it instead of reading it back; every later attempt re-reads the twin, then the shadow."""
        attempt = rounds = 0
        while attempt < MAX_ATTEMPTS:
            if rounds:
                _check_budget(twin_id)
            if rounds or twin is None or known is None:
                twin = self._read_twin(twin_id, fresh=True)  # twin first, then the shadow: see the module docstring
                shadow, shadow_etag = self._load(twin_id, model_id)
            else:
                shadow, shadow_etag = known
            rounds += 1
            action = plan(shadow, twin, wants_twin(shadow, twin is not None, self.projection.policy),
                          _properties(shadow, self.projection), self.projection.max_patch_bytes,
                          dropped_paths(shadow, self.projection.connection_path))
            try:
                self._execute(twin_id, twin, action, tally)
            except Superseded:
                # The pacer sent a newer write for this twin version instead (shared/twins/write_pacer.py) and it
                # is done: progress, not contention — re-read without spending an attempt (the budget bounds it).
                continue
            except (TwinConflict, TwinMissing):
                _back_off(attempt)
                attempt += 1
                continue
            except TwinRejected:
                if tolerate_rejection:
                    log.error("twin %s still refuses the reverted state; left as is", twin_id)
                    return
                raise
            attempt += 1
            if action.partial:
                continue  # created bare (too big for one request): the properties follow as patches
            # Step 3 (module docstring): what we showed, or found already shown, must still be the latest.
            if action.kind != "none":
                if self._shadow_etag(twin_id) == shadow_etag:
                    return
            elif not committed or _etag(self.twins.get_twin(twin_id)) == _etag(twin):
                return
            log.info("twin %s: another writer moved on during our write; showing the latest state", twin_id)
        raise TransientError(Code.CONFLICT_RETRIES_EXHAUSTED, f"twin {twin_id} kept changing under us")

    def _shadow_etag(self, twin_id: str) -> str | None:
        return self.state.version(twin_id)  # the etag alone: the shadow itself is not read again

    def _execute(self, twin_id: str, twin: dict[str, object] | None, action: TwinAction, tally: WriteTally) -> None:
        if action.kind == "none":
            return
        try:
            if action.kind == "create":
                self._count(tally)
                etag = self.twins.create_twin(twin_id, action.document)
                self._remember(twin_id, {**action.document, "$dtId": twin_id, "$etag": etag})
            elif action.kind == "delete":
                self._forget(twin_id)
                self._count(tally)
                self.twins.delete_twin(twin_id, _etag(twin))
            else:
                current = _etag(twin)
                assert current is not None and twin is not None
                content: dict[str, Any] = twin
                remember = self._known_limit > 0
                for chunk in action.patches:
                    self._count(tally)
                    current = self.twins.patch_twin(twin_id, chunk, current)
                    if remember:
                        content = _patched(content, chunk)  # a copy: the twin read is never changed in place
                if remember:
                    self._remember(twin_id, {**content, "$etag": current})
        except BaseException:
            self._forget(twin_id)  # whatever happened to the twin, the next step reads it for real
            raise

    # ---- known twins (see the module docstring) ----------------------------------------------------------------
    def _read_twin(self, twin_id: str, *, fresh: bool = False) -> dict[str, Any] | None:
        if not fresh and self._known_limit > 0:
            with self._known_lock:
                known = self._known.get(twin_id)
                if known is not None:
                    self._known.move_to_end(twin_id)
                    return known
        twin = self.twins.get_twin(twin_id)
        if twin is None:
            self._forget(twin_id)
        else:
            self._remember(twin_id, twin)
        return twin

    def _remember(self, twin_id: str, twin: dict[str, Any]) -> None:
        if self._known_limit <= 0:
            return
        if not twin.get("$etag"):
            self._forget(twin_id)  # no ETag (or caching off): nothing safe to remember
            return
        with self._known_lock:
            self._known[twin_id] = twin
            self._known.move_to_end(twin_id)
            while len(self._known) > self._known_limit:
                self._known.popitem(last=False)

    def _forget(self, twin_id: str) -> None:
        with self._known_lock:
            self._known.pop(twin_id, None)

    def _count(self, tally: WriteTally) -> None:
        tally.count += 1
        with self._writes_lock:
            self._writes += 1

    def _revert(self, twin_id: str, model_id: str, changes: list[Change]) -> None:
        self._update_shadow(twin_id, model_id, lambda shadow: undo(shadow, changes), "revert")

    def _update_shadow(self, twin_id: str, model_id: str, change: Callable[[Shadow], bool], what: str) -> None:
        """Apply ``change`` to the stored shadow under optimistic concurrency (re-read on conflict)."""
        for attempt in range(MAX_ATTEMPTS):
            shadow, etag = self._load(twin_id, model_id)
            if not change(shadow):
                return
            try:
                self._save(shadow, etag)
                return
            except StateConflict:
                _back_off(attempt)
        raise TransientError(Code.CONFLICT_RETRIES_EXHAUSTED, f"could not {what} the state of {twin_id}")

    def _load(self, twin_id: str, model_id: str) -> tuple[Shadow, str | None]:
        loaded = self.state.load(twin_id)
        if loaded is None:
            return Shadow(twin_id, model_id), None
        shadow, etag = loaded
        return shadow.copy(), etag

    def _save(self, shadow: Shadow, etag: str | None) -> str:
        return self.state.save(shadow, etag)


def _check_budget(twin_id: str) -> None:
    """Start no new round of calls once the invocation's budget is spent: the broker redelivers
    (shared/twins/deadline.py)."""
    if expired():
        raise TransientError(Code.TIME_BUDGET_SPENT, f"the invocation's time budget ran out before {twin_id} was done")


def _back_off(attempt: int) -> None:
    """Writers racing on one twin retry at once and collide again: spread them (≤ ~0.3 s over all attempts)."""
    time.sleep(random.uniform(0, 0.01 * 2**attempt))


def _field_path(field: str) -> str:
    return "" if field.startswith("$") else "data.body." + field.replace("/", ".")


def _properties(shadow: Shadow, projection: Projection) -> dict[tuple[str, ...], object]:
    return desired_properties(shadow, projection.connection_path, projection.connection_values)


def _patched(twin: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """``twin`` after the planner's ``add``/``replace``/``remove`` ops, copying only the objects on each op's path
    (as Digital Twins applies them: a removed top-level property loses its metadata too)."""
    out = dict(twin)
    for op in ops:
        pointer: str = op["path"]
        parts = pointer[1:].split("/")
        if "~" in pointer:
            parts = [p.replace("~1", "/").replace("~0", "~") for p in parts]
        node = out
        for part in parts[:-1]:
            child = dict(node[part])
            node[part] = child
            node = child
        if op["op"] == "remove":
            node.pop(parts[-1], None)
            if len(parts) == 1 and isinstance(out.get("$metadata"), dict):
                out["$metadata"] = {k: v for k, v in out["$metadata"].items() if k != parts[0]}
        else:
            node[parts[-1]] = op["value"]
    return out


def _etag(twin: dict[str, object] | None) -> str | None:
    if twin is None:
        return None
    value = twin.get("$etag")
    return value if isinstance(value, str) else None
