"""Freshness: which event wins, per twin and per field, whatever the delivery order (docs/azure-behaviour.md §5).

The state of one twin is a ``Shadow``: for each field the twin is fed from, the latest value and the ordering key
that made it the latest (a ``Mark``). Merging an event into a shadow is a pure function, and the result does not
depend on the order events are merged in (commutative, idempotent) — the property tests check exactly that.

Ordering keys:
* connection (field ``$connection``): the IoT Hub ``sequenceNumber``, compared as a hexadecimal *number*
  (equal = duplicate, lower = stale). Microsoft's "compare the strings" advice is only right for equal-length,
  same-case strings.
* lifecycle (``$lifecycle``): (event time, twin version, deleted-after-created on a tie). DeviceDeleted leaves a
  tombstone, so a late DeviceCreated never resurrects a deleted device, and marks older than the tombstone are
  dropped while newer ones (a re-created device that already talks) survive.
* telemetry (one field per twin property): (``iothub-enqueuedtime``, event id) — the id breaks ties so two messages
  enqueued in the same tick still give the same result in any order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.outcome import Outcome

LIFECYCLE = "$lifecycle"
TOMBSTONE = "$tombstone"  # the latest deletion; kept after a re-creation so older events stay stale
CONNECTION = "$connection"
_CONTROL = frozenset({LIFECYCLE, TOMBSTONE})
LIVE = "live"
DELETED = "deleted"

OrderKey = tuple[int | str, ...]


@dataclass(slots=True)
class Mark:
    order: OrderKey
    value: Any
    event_id: str
    ticks: int  # when it happened, to compare with a tombstone

    def to_data(self) -> list[Any]:
        return [[encode_key_part(part) for part in self.order], self.value, self.event_id, self.ticks]

    @classmethod
    def from_data(cls, data: list[Any]) -> Mark:
        return cls(tuple(decode_key_part(part) for part in data[0]), data[1], data[2], data[3])


# Stored ordering keys must survive JSON and every store exactly. IoT Hub's connection sequence numbers are 256-bit
# numbers (64 hex digits, docs/reliability.md): far beyond the signed 64 bits a JSON number, orjson or a Table
# property carries. So an integer part outside that range is stored as text, tagged ({"x": "<hex>"}) so that it can
# never be mistaken for a string part (telemetry keys hold event ids), and read back as the same integer: compared
# as a number in memory, lossless at rest. Integers inside the range stay plain (the format of earlier shadows).
_INT64 = range(-(2**63), 2**63)
_HEX_TAG = "x"


def encode_key_part(part: int | str) -> int | str | dict[str, str]:
    if type(part) is int and part not in _INT64:
        return {_HEX_TAG: format(part, "x")}
    return part


def decode_key_part(part: Any) -> int | str:
    if isinstance(part, dict):
        return int(part[_HEX_TAG], 16)
    if isinstance(part, int | str):
        return part
    raise ValueError(f"unexpected ordering key part {part!r} in stored state")


@dataclass(slots=True)
class Intent:
    """What one event wants of one twin: values for some fields, all stamped with the event's ordering key.

    The event's ``Mark`` for a field is made only when it wins a merge (most of a batch's values are superseded
    within the batch or on a later merge; making them up front was ~10 % of the benchmark's profile).
    """

    event_id: str
    twin_id: str
    lifecycle: bool  # DeviceCreated / DeviceDeleted: the only intents with control fields, merged first
    order: OrderKey
    ticks: int  # when it happened, to compare with a tombstone
    fields: dict[str, Any]  # field -> value (one dict, not a tuple per field: fewer objects for the GC to track)


@dataclass
class Shadow:
    """The latest known value of every field of one twin, with the key that made it the latest."""

    twin_id: str
    model_id: str
    marks: dict[str, Mark] = field(default_factory=dict)
    # Every device field ever shown on the twin: what a deletion drops must also leave the twin, even when the
    # twin itself is not deleted (a DeviceDeleted and a newer DeviceCreated coalesced into one batch).
    owned: set[str] = field(default_factory=set)

    @property
    def lifecycle(self) -> str | None:
        mark = self.marks.get(LIFECYCLE)
        return None if mark is None else str(mark.value)

    @property
    def tombstone_ticks(self) -> int | None:
        mark = self.marks.get(TOMBSTONE)
        return None if mark is None else mark.ticks

    def has_device_data(self) -> bool:
        return any(name not in _CONTROL for name in self.marks)

    def device_fields(self) -> dict[str, Mark]:
        return {name: mark for name, mark in self.marks.items() if name not in _CONTROL}

    def copy(self) -> Shadow:
        return Shadow(self.twin_id, self.model_id, dict(self.marks), set(self.owned))

    def to_data(self) -> dict[str, Any]:
        return {"twin": self.twin_id, "model": self.model_id,
                "marks": {name: mark.to_data() for name, mark in self.marks.items()}, "owned": sorted(self.owned)}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Shadow:
        return cls(data["twin"], data["model"], {n: Mark.from_data(m) for n, m in data["marks"].items()},
                   set(data.get("owned", ())))


# One field a merge changed: (field, the mark it replaced or None when new, the mark now held or None when dropped)
# — enough to undo it. A plain tuple: merge makes one per winning value, and a class cost ~5x more to build.
Change = tuple[str, Mark | None, Mark | None]


def merge(shadow: Shadow, intent: Intent) -> tuple[Outcome, list[Change]]:
    """Merge ``intent`` into ``shadow`` in place; the outcome and the field changes it made."""
    changes: list[Change] = []
    equal = newer = 0
    tombstone = shadow.tombstone_ticks
    # Device fields that happened before the device was deleted are dropped; control fields are always ordered.
    before_deletion = tombstone is not None and intent.ticks <= tombstone
    order = intent.order
    marks = shadow.marks
    for name, value in intent.fields.items():
        device_field = name not in _CONTROL
        if before_deletion and device_field:
            continue
        current = marks.get(name)
        if current is not None:
            if order == current.order:
                equal += 1
                continue
            if order < current.order:
                continue
        newer += 1
        mark = marks[name] = Mark(order, value, intent.event_id, intent.ticks)
        changes.append((name, current, mark))
        if device_field:
            shadow.owned.add(name)
        elif name == TOMBSTONE:
            changes.extend(_clear_before(shadow, mark.ticks))
    if newer:
        return Outcome.APPLIED, changes
    if equal and equal == len(intent.fields):
        return Outcome.DUPLICATE, changes
    return Outcome.STALE, changes


def merge_all(shadow: Shadow, intents: list[Intent]) -> tuple[list[Outcome], list[Change]]:
    """The same as ``merge`` for each intent in turn (same outcomes, same shadow), for intents without control
    fields (anything but DeviceCreated / DeviceDeleted), one Mark per field instead of one per event.

    Within a batch most values are superseded by a newer one of the same batch. So the running winner of each field
    is just the intent that set it, and the shadow gets a Mark only for each field's final winner. And telemetry
    mostly comes in order: an intent newer than every property value seen so far (``newest``) wins all its fields
    without comparing them one by one. Outcomes are exactly those of the sequential merge: an event is applied when
    one of its values beat everything merged before it.
    """
    tombstone = shadow.tombstone_ticks
    marks = shadow.marks
    winners: dict[str, Intent] = {}
    outcomes: list[Outcome] = []
    # The newest ordering key of any property field (telemetry and reconcile marks: (ticks, id) keys, comparable).
    # The connection field is ordered by sequence numbers, another scale: it never takes the shortcut.
    newest: OrderKey | None = None
    for name, mark in marks.items():
        if name != CONNECTION and name not in _CONTROL and (newest is None or mark.order > newest):
            newest = mark.order
    for intent in intents:
        if intent.lifecycle:
            raise ValueError(f"merge_all: {intent.event_id} is a lifecycle intent; merge() it first")
        order = intent.order
        if tombstone is not None and intent.ticks <= tombstone:
            outcomes.append(Outcome.STALE)  # every field is a device field: all happened before the deletion
            continue
        fields = intent.fields
        if fields and CONNECTION not in fields and (newest is None or order > newest):
            winners.update(dict.fromkeys(fields, intent))
            newest = order
            outcomes.append(Outcome.APPLIED)
            continue
        # Here the intent is not newer than everything (or is a connection event): field by field. Whatever it
        # wins is not newer than ``newest``, which therefore stays as it is.
        equal = newer = 0
        for name in fields:
            winner = winners.get(name)
            if winner is not None:
                current: OrderKey | None = winner.order
            else:
                held = marks.get(name)
                current = None if held is None else held.order
            if current is not None:
                if order == current:
                    equal += 1
                    continue
                if order < current:
                    continue
            newer += 1
            winners[name] = intent
        if newer:
            outcomes.append(Outcome.APPLIED)
        elif equal and equal == len(fields):
            outcomes.append(Outcome.DUPLICATE)
        else:
            outcomes.append(Outcome.STALE)
    changes: list[Change] = []
    for name, intent in winners.items():
        mark = Mark(intent.order, intent.fields[name], intent.event_id, intent.ticks)
        changes.append((name, marks.get(name), mark))
        marks[name] = mark
        shadow.owned.add(name)
    return outcomes, changes


def _clear_before(shadow: Shadow, ticks: int) -> list[Change]:
    """A deletion forgets what the device said before it; what a re-created device said after stays."""
    dropped = [n for n, m in shadow.marks.items() if n not in _CONTROL and m.ticks <= ticks]
    return [(name, shadow.marks.pop(name), None) for name in dropped]


def undo(shadow: Shadow, changes: list[Change]) -> bool:
    """Revert ``changes`` where the shadow still holds them (someone newer may have moved on). True if any."""
    undone = False
    for name, before, after in reversed(changes):
        if shadow.marks.get(name) != after:
            continue
        if before is None:
            shadow.marks.pop(name, None)
        else:
            shadow.marks[name] = before
        undone = True
    return undone
