"""Propagation rules: a child twin's change, carried up to its parent(s) — the tutorial's ``ProcessDTRoutedData``,
configurable.

A rule fires on a child's ``Twin.Update`` that matches its filter *and* whose patch touches the rule's ``source``
property. Parents are the sources of the child's incoming relationships named ``relationship``. Per parent:

* ``copy`` — the parent's ``target`` becomes the child's new value.
* ``avg``/``min``/``max``/``sum``/``count`` — recomputed over *all* children of the parent reached by that
  relationship, from their current twins (GET is consistent in ADT, queries are not, so no query is used).
  Children without a numeric ``source`` value are left out; with none, the target is left as it is. A
  ``Relationship.Create``/``Delete`` of the rule's relationship name recomputes the relationship's source (the
  parent) too, whatever the rule's filter (it speaks of the children's updates): a child joining or leaving
  changes the aggregate.

Writes go through the ``TwinStore`` port as conditional patches (``If-Match`` the etag just read); on
``TwinConflict`` the parent is re-read and the decision taken again (bounded).

Freshness (an older notification must not overwrite a newer value):
* aggregates are recomputed from the children's current state, so a late or redelivered notification can only
  re-derive the present — never an older value;
* ``copy`` keeps, per (rule, parent), the order key of the value it last wrote in the ``StateStore`` (a record
  named ``$propagation/<parent>``): ``(source time, notification id)`` with the source time taken from
  ``$metadata/<prop>/sourceTime`` in the same patch when present, else the notification's ``time``. An older key
  is skipped (stale), an equal key is a redelivery (duplicate).

Loop guard (a rule's own write comes back as the parent's ``Twin.Update``):
* a write that would not change the parent's value is not made (no-op suppression), so cycles converge;
* each write is remembered as an *echo* (digest of the property changes it makes, with a hop count) in the
  parent's ``$propagation`` record; when the parent's notification arrives, it is recognised by that digest and
  rules only fire on it while hops < ``max_hops`` (default 3) — a chain climbs at most that many levels and a
  cyclic graph cannot ping-pong forever;
* a parent equal to the child is never written.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson

from shared.egress.config import CompiledRule, Mode
from shared.egress.notifications import RELATIONSHIP_CREATE, RELATIONSHIP_DELETE, TWIN_UPDATE, Notification
from shared.egress.transforms import source_times
from shared.errors import Code, PermanentError, StateConflict, TransientError, TwinConflict, TwinMissing, TwinRejected
from shared.ingest.timeparse import parse_ticks
from shared.ports import StateStore, TwinStore
from shared.twins.freshness import Mark, Shadow

log = logging.getLogger("twinbridge.propagation")

ECHO = "$echo"
ECHO_MEMORY = 16  # recent writes remembered per parent (enough for a burst of children reporting together)
MAX_ATTEMPTS = 5


def _get(document: Any, pointer: str) -> Any:
    for part in pointer[1:].split("/"):
        if not isinstance(document, dict) or part not in document:
            return None
        document = document[part]
    return document


def _digest(changes: list[tuple[str, Any]]) -> str:
    """Numbers compared as floats: the twin service may echo 42.0 as 42."""
    normal = sorted(((path, float(v) if _number(v) is not None else v) for path, v in changes), key=lambda c: c[0])
    return hashlib.sha256(orjson.dumps(normal, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def patch_changes(patch: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(path, value) of the property operations of a patch (metadata ops left out): what an echo is matched on."""
    return [(str(op["path"]), op.get("value")) for op in patch
            if not any(p.startswith("$") for p in str(op["path"])[1:].split("/"))]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class RulePropagator:
    def __init__(self, rules: list[CompiledRule], twins: TwinStore, state: StateStore) -> None:
        self.rules = rules
        self.twins = twins
        self.state = state

    def apply(self, notification: Notification) -> int:
        if self.rules and notification.type in (RELATIONSHIP_CREATE, RELATIONSHIP_DELETE):
            return self._relinked(notification)
        if not self.rules or notification.type != TWIN_UPDATE:
            return 0
        candidates = [r for r in self.rules if r.filter.matches(notification.cloudevent)]
        patch: list[dict[str, Any]] = notification.data["patch"]
        changed = {str(op["path"]): op for op in patch}
        candidates = [r for r in candidates if r.config.source in changed]
        if not candidates:
            return 0
        child = notification.twin_id
        hops = self._echo_hops(child, patch_changes(patch))
        written = 0
        for rule in candidates:
            if hops is not None and hops > rule.config.max_hops:
                log.info("rule %s: %s is an echo at hop %d, not propagated further", rule.config.name, child, hops)
                continue
            try:
                incoming = self.twins.list_incoming_relationships(child)
            except TwinMissing:
                # the child was deleted after this notification: its Relationship.Delete notifications
                # recompute the parents it left, so nothing is owed here (raising would redeliver forever)
                return written
            parents = sorted({str(r["$sourceId"]) for r in incoming
                              if r.get("$relationshipName") == rule.config.relationship})
            for parent in parents:
                if parent != child and self._update_parent(rule, parent, notification, changed[rule.config.source],
                                                           (hops or 0) + 1):
                    written += 1
        return written

    def _relinked(self, notification: Notification) -> int:
        """A child joined or left a parent (a relationship of the rule's name created or deleted): the parent's
        aggregate changes although no child changed. ``copy`` rules wait for the child's next value."""
        data = notification.data
        name = data.get("$relationshipName") if isinstance(data, dict) else None
        parent = notification.twin_id  # the relationship's source twin
        written = 0
        for rule in self.rules:
            # the rule's filter speaks of the children's Twin.Update; the relationship name is what scopes this
            if rule.config.mode is Mode.COPY or rule.config.relationship != name:
                continue
            probe = {"op": "replace", "path": rule.config.source}
            if self._update_parent(rule, parent, notification, probe, 1):
                written += 1
        return written

    # ---- echo records ---------------------------------------------------------------------------------------------
    def _load(self, twin_id: str) -> tuple[Shadow, str | None]:
        found = self.state.load(f"$propagation/{twin_id}")
        return found if found is not None else (Shadow(f"$propagation/{twin_id}", "$propagation"), None)

    def _echo_hops(self, twin_id: str, changes: list[tuple[str, Any]]) -> int | None:
        shadow, _ = self._load(twin_id)
        echo = shadow.marks.get(ECHO)
        if echo is None or not changes:
            return None
        digest = _digest(changes)
        for entry_digest, hops in echo.value:
            if entry_digest == digest:
                return int(hops)
        return None

    # ---- one parent -----------------------------------------------------------------------------------------------
    def _update_parent(self, rule: CompiledRule, parent: str, notification: Notification, op: dict[str, Any],
                       hops: int) -> bool:
        config = rule.config
        order = self._order(notification, config.source)
        for _ in range(MAX_ATTEMPTS):
            shadow, state_etag = self._load(parent)
            field = f"copy:{config.name}:{config.target}"
            if config.mode is Mode.COPY:
                if op["op"] == "remove":
                    return False  # a child dropping the property says nothing about the parent's value
                current = shadow.marks.get(field)
                if current is not None and tuple(current.order) >= order:
                    return False  # stale (older) or duplicate (same notification) change
                value = op.get("value")
            twin = self.twins.get_twin(parent)
            if twin is None:
                return False  # the parent went away between the relationship read and now
            if config.mode is not Mode.COPY:
                value = self._aggregate(rule, parent)
            existed = _get(twin, config.target) is not None
            if value is None and not existed:
                return False  # no child holds a value and the parent holds none: nothing to say
            if existed and _get(twin, config.target) == value:
                changed = False  # no-op: nothing to write, nothing will echo
            else:
                # An aggregate over no values (the last child left or lost the property) is undefined: the
                # parent's value goes, rather than keeping the average of children it no longer has.
                ops = ([{"op": "remove", "path": config.target}] if value is None else
                       [{"op": "replace" if existed else "add", "path": config.target, "value": value}])
                try:
                    self.twins.patch_twin(parent, ops, str(twin["$etag"]))
                except TwinConflict:
                    continue  # the parent changed since we read it: read again, decide again
                except TwinMissing:
                    return False
                except TwinRejected as exc:
                    raise PermanentError.at(Code.TWIN_REJECTED, config.target,
                                            f"rule {config.name}: parent {parent} refused the write: {exc}") from None
                changed = True
            if config.mode is Mode.COPY:
                shadow.marks[field] = Mark(order, value, notification.id, order[0] if isinstance(order[0], int) else 0)
            if changed:
                self._remember_echo(shadow, [(config.target, value)], hops)
            if config.mode is Mode.COPY or changed:
                try:
                    self.state.save(shadow, state_etag)
                except StateConflict:
                    continue  # another instance recorded something for this parent: redo with its view
            return changed
        raise TransientError(Code.CONFLICT_RETRIES_EXHAUSTED,
                             f"rule {config.name}: parent {parent} kept changing ({MAX_ATTEMPTS} attempts)")

    def _order(self, notification: Notification, source: str) -> tuple[int | str, ...]:
        patch = notification.data.get("patch") if isinstance(notification.data, dict) else None
        stamp = (source_times(patch).get(source) if isinstance(patch, list) else None) or notification.time
        try:
            ticks = parse_ticks(stamp) if stamp else 0
        except ValueError:
            ticks = 0
        return (ticks, notification.id)

    def _remember_echo(self, shadow: Shadow, changes: list[tuple[str, Any]], hops: int) -> None:
        previous = shadow.marks.get(ECHO)
        entries = [e for e in (previous.value if previous else []) if e[0] != _digest(changes)]
        entries.append([_digest(changes), hops])
        shadow.marks[ECHO] = Mark((), entries[-ECHO_MEMORY:], "", 0)

    def _aggregate(self, rule: CompiledRule, parent: str) -> float | int | None:
        config = rule.config
        children = [str(r["$targetId"]) for r in self.twins.list_relationships(parent)
                    if r.get("$relationshipName") == config.relationship]
        values: list[float] = []
        for child_id in children:
            twin = self.twins.get_twin(child_id)
            number = _number(_get(twin, config.source)) if twin is not None else None
            if number is not None:
                values.append(number)
        if config.mode is Mode.COUNT:
            return len(values)
        if not values:
            return None
        if config.mode is Mode.AVG:
            return sum(values) / len(values)
        if config.mode is Mode.MIN:
            return min(values)
        if config.mode is Mode.MAX:
            return max(values)
        return sum(values)
