"""Registry reconcile, the decisions: IoT Hub registry rows vs twins and shadows → a plan of synthesized intents.

IoT Hub does not report everything (60 s connection snapshots, events lost after 24 h of failed delivery, devices
created before the app existed), so the registry is read periodically and the twins corrected. Every correction
is an ``Intent`` merged into the twin's shadow by the same ``TwinApplier`` the events use — never a direct twin
write — so freshness stays the single arbiter and a reconcile can never regress newer event-driven state:

* The registry is read at time Q; it is taken to describe the device as of ``observed = Q - grace`` (query
  results lag; ``RECONCILE_GRACE_SECONDS``). Anything an event said after ``observed`` is left alone.
* Connection: event marks are ordered by ``(sequenceNumber,)``. A correction is ordered ``(current sequence or -1,
  observed ticks)``: above the mark it corrects (a tuple that extends another sorts after it), below any later
  event (its sequence number is higher). It is only made when the mark's event time is before ``observed``.
* Lifecycle: event marks are ``(event time, twin version, 0 created / 1 deleted)``. A missing twin gets a created
  mark ``(observed, registry version, 0)``; a twin whose device is gone gets a deleted mark ``(observed, -1, 1)`` and
  tombstone (``delete``), or a property mark ordered ``(observed, "~reconcile")`` like telemetry (``mark``). A
  device deleted or re-created after ``observed`` has a newer event mark, and the synthesized one loses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.twins.freshness import CONNECTION, DELETED, LIFECYCLE, LIVE, TOMBSTONE, Intent, Shadow

RECONCILE_ORDER_TAG = "~reconcile"  # sorts after any event id at the same tick: a deliberate correction


@dataclass(frozen=True, slots=True)
class RegistryDevice:
    device_id: str
    connection_state: str | None = None  # "Connected" | "Disconnected"
    status: str | None = None  # enabled | disabled
    version: int | None = None  # twin version
    model_id: str | None = None  # IoT Plug and Play model id, when the device announced one
    state_since_ticks: int | None = None  # connectionStateUpdatedTime, when the row has it


@dataclass(frozen=True, slots=True)
class RegistryPage:
    devices: list[RegistryDevice]
    continuation: str | None


class Registry(Protocol):
    def page(self, continuation: str | None, size: int) -> RegistryPage: ...

    def existing(self, device_ids: Sequence[str]) -> set[str]: ...


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    orphans: str = "mark"  # delete | mark | report
    mark_property: str = "status"  # '/'-separated twin property path
    mark_value: str = "NotInRegistry"
    grace_ticks: int = 300 * 10_000_000
    connection_path: tuple[str, ...] | None = ("connectionState",)
    connection_values: dict[bool, str] = field(default_factory=lambda: {True: "Connected", False: "Disconnected"})


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # create | connection | orphan-delete | orphan-mark | orphan-report
    twin_id: str
    model_id: str
    device_id: str
    detail: str
    intents: tuple[Intent, ...] = ()
    pnp_model: str | None = None

    def line(self) -> str:
        pnp = f" (device model {self.pnp_model})" if self.pnp_model else ""
        return f"{self.kind:<14} {self.twin_id}: {self.detail}{pnp}"


def _event_id(kind: str, device_id: str, ticks: int) -> str:
    return f"reconcile:{kind}:{device_id}:{ticks}"


def connection_intent(twin_id: str, device: RegistryDevice, shadow: Shadow | None, twin: dict[str, Any] | None,
                      observed: int, options: ReconcileOptions) -> tuple[Intent, str] | None:
    state = device.connection_state
    if state not in ("Connected", "Disconnected"):
        return None
    connected = state == "Connected"
    since = min(observed, device.state_since_ticks) if device.state_since_ticks else observed
    current = shadow.marks.get(CONNECTION) if shadow is not None else None
    if current is not None:
        if bool(current.value) == connected or current.ticks >= since:
            return None  # agrees, or an event newer than what the registry knows decided it
        order: tuple[int | str, ...] = (current.order[0], since)
        was = "Connected" if current.value else "Disconnected"
    else:
        shown = _read(twin, options.connection_path) if twin is not None else None
        if twin is not None and shown == options.connection_values[connected]:
            return None
        order = (-1, since)
        was = f"{shown!r} (no event seen)" if twin is not None else "no twin"
    intent = Intent(_event_id("connection", device.device_id, since), twin_id, False, order, since,
                    {CONNECTION: connected})
    return intent, f"connection {was} → {state}"


def plan_device(device: RegistryDevice, twin_id: str, model_id: str, twin: dict[str, Any] | None,
                shadow: Shadow | None, now_ticks: int, options: ReconcileOptions) -> list[Action]:
    """What one registry device needs of its twin (nothing when twin and shadow agree with the registry)."""
    observed = now_ticks - options.grace_ticks
    actions: list[Action] = []
    tombstone = shadow.tombstone_ticks if shadow is not None else None
    if tombstone is not None and tombstone >= observed:
        return actions  # deleted (by an event) after the registry was read: that event is newer
    conn = connection_intent(twin_id, device, shadow, twin, observed, options)
    if twin is None:
        version = device.version if device.version is not None else -1
        intents: list[Intent] = [Intent(_event_id("created", device.device_id, observed), twin_id, True,
                                        (observed, version, 0), observed, {LIFECYCLE: LIVE})]
        if conn is not None:
            intents.append(conn[0])
        actions.append(Action("create", twin_id, model_id, device.device_id,
                              f"device is in the registry (twin version {version}), twin is missing",
                              tuple(intents), device.model_id))
    elif conn is not None:
        actions.append(Action("connection", twin_id, model_id, device.device_id, conn[1], (conn[0],),
                              device.model_id))
    return actions


def plan_orphan(twin: dict[str, Any], device_id: str, shadow: Shadow | None, now_ticks: int,
                options: ReconcileOptions) -> Action | None:
    """A twin whose device the registry no longer has: delete, mark or report it (``RECONCILE_ORPHANS``)."""
    observed = now_ticks - options.grace_ticks
    twin_id, model_id = str(twin["$dtId"]), str(twin.get("$metadata", {}).get("$model", ""))
    if shadow is not None and any(m.ticks > observed for m in shadow.marks.values()):
        return None  # heard from (or about) recently: the registry read may predate its creation
    if options.orphans == "report":
        return Action("orphan-report", twin_id, model_id, device_id, "device is not in the registry (reported only)")
    if options.orphans == "delete":
        intent = Intent(_event_id("deleted", device_id, observed), twin_id, True, (observed, -1, 1), observed,
                        {LIFECYCLE: DELETED, TOMBSTONE: DELETED})
        return Action("orphan-delete", twin_id, model_id, device_id, "device is not in the registry", (intent,))
    path = tuple(options.mark_property.split("/"))
    if _read(twin, path) == options.mark_value:
        return None
    intent = Intent(_event_id("mark", device_id, observed), twin_id, False, (observed, RECONCILE_ORDER_TAG), observed,
                    {options.mark_property: options.mark_value})
    return Action("orphan-mark", twin_id, model_id, device_id,
                  f"device is not in the registry: {options.mark_property} = {options.mark_value!r}", (intent,))


def twin_id_pattern(template: str, hub_name: str | None) -> re.Pattern[str]:
    """The inverse of the device twin id template: which device a twin id names."""
    pattern = re.escape(template)
    pattern = pattern.replace(re.escape("{deviceId}"), "(?P<device>.+)", 1).replace(re.escape("{deviceId}"), ".+")
    hub = re.escape(hub_name) if hub_name else "[^/]*"
    pattern = pattern.replace(re.escape("{hubName}"), hub).replace(re.escape("{moduleId}"), ".*")
    return re.compile(pattern)


def _read(twin: dict[str, Any] | None, path: tuple[str, ...] | None) -> Any:
    if twin is None or not path:
        return None
    node: Any = twin
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
