"""Live changes for the page: server-sent events fed by an ADT event route, or by a change poller until one exists.

*Route* (what ADT itself offers): an event route of the instance delivers its notifications to the explorer's
``POST /api/notifications`` (a webhook endpoint, Event Grid or CloudEvents schema, answered by the app's own webhook
decisions, shared/doors/webhook.py). Each notification is read and validated by the app's reader
(shared/egress/notifications.py) and becomes a change: its kind, twin, and for updates the JSON patch.

*Poll* (the fallback while no route feeds the explorer): the twins are queried every ``interval`` seconds and compared
by ``$etag``; a changed twin yields a ``twin.update`` with the top-level properties that changed as a JSON patch.
In ``auto`` mode the poller stops for good once a route notification arrives, so an instance is not queried twice.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from shared.egress.notifications import (
    RELATIONSHIP_CREATE,
    RELATIONSHIP_DELETE,
    RELATIONSHIP_TYPES,
    RELATIONSHIP_UPDATE,
    TELEMETRY,
    TWIN_CREATE,
    TWIN_DELETE,
    TWIN_UPDATE,
    read_notification,
)
from shared.errors import PermanentError

log = logging.getLogger("twinbridge.explorer")

HEARTBEAT_SECONDS = 15.0
QUEUE_LIMIT = 1000  # per browser tab; a tab that stops reading loses its oldest events, never the server's memory

_KINDS = {  # the app's notification types → the page's change kinds
    TWIN_CREATE: "twin.create", TWIN_UPDATE: "twin.update", TWIN_DELETE: "twin.delete",
    RELATIONSHIP_CREATE: "relationship.create", RELATIONSHIP_UPDATE: "relationship.update",
    RELATIONSHIP_DELETE: "relationship.delete", TELEMETRY: "telemetry",
}


class ChangeHub:
    """Fans each change out to every connected page; counts what it saw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[queue.Queue[dict[str, Any] | None]] = []
        self._sequence = 0
        self.closed = threading.Event()
        self.route_seen = threading.Event()
        self.counts: dict[str, int] = {"route": 0, "poll": 0, "dropped": 0}

    def publish(self, change: dict[str, Any]) -> None:
        with self._lock:
            self._sequence += 1
            change = {**change, "seq": self._sequence}
            self.counts[change.get("via", "poll")] = self.counts.get(change.get("via", "poll"), 0) + 1
            for subscriber in self._subscribers:
                try:
                    subscriber.put_nowait(change)
                except queue.Full:
                    self.counts["dropped"] += 1

    def subscribe(self) -> queue.Queue[dict[str, Any] | None]:
        inbox: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_LIMIT)
        with self._lock:
            self._subscribers.append(inbox)
        return inbox

    def unsubscribe(self, inbox: queue.Queue[dict[str, Any] | None]) -> None:
        with self._lock:
            if inbox in self._subscribers:
                self._subscribers.remove(inbox)

    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        self.closed.set()
        with self._lock:
            for subscriber in self._subscribers:
                with contextlib.suppress(queue.Full):
                    subscriber.put_nowait(None)

    def stream(self, heartbeat: float = HEARTBEAT_SECONDS) -> Iterator[bytes]:
        """The ``text/event-stream`` body for one page: each change as an ``event: change``, comments to keep alive."""
        inbox = self.subscribe()
        try:
            yield b"retry: 2000\n: connected\n\n"
            while not self.closed.is_set():
                try:
                    change = inbox.get(timeout=heartbeat)
                except queue.Empty:
                    yield b": keep-alive\n\n"
                    continue
                if change is None:
                    return
                yield b"id: %d\nevent: change\ndata: %s\n\n" % (change["seq"], orjson.dumps(change))
        finally:
            self.unsubscribe(inbox)


def from_notification(event: Any, instance: str | None = None) -> dict[str, Any] | None:
    """One ADT notification (Event Grid or CloudEvents schema) as a change for the page; None when not a valid one.

    Read by the app's own reader (shared/egress/notifications.py: both schemas, validated), so the page shows what
    ``route_twin_changes`` would accept and nothing it would quarantine. ``instance``: the ADT host name, the
    ``source`` of notifications that arrive in Event Grid schema (as the app takes it from ADT_URL).
    """
    try:
        notification = read_notification(event, instance)
    except PermanentError:
        return None
    kind = _KINDS[notification.type]
    data = notification.data
    body = data if isinstance(data, dict) else {}
    change: dict[str, Any] = {"kind": kind, "via": "route", "time": notification.time, "id": notification.id,
                              "twinId": notification.twin_id}
    if notification.type in RELATIONSHIP_TYPES:
        # subject "<source twin>/relationships/<relationship id>"; create/delete bodies also name the target
        change.update(relationshipId=notification.subject.partition("/relationships/")[2] or None,
                      targetId=body.get("$targetId"), name=body.get("$relationshipName"))
    elif notification.type == TELEMETRY:
        change.update(component=notification.subject or None, data=data)
    if notification.type in (TWIN_UPDATE, RELATIONSHIP_UPDATE):
        change["patch"] = body["patch"]
        change["modelId"] = body.get("modelId")
    elif notification.type == TWIN_CREATE:
        change["modelId"] = body["$metadata"]["$model"]
    return change if change["twinId"] else None


def _user_properties(twin: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in twin.items() if not k.startswith("$")}


def twin_patch(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The top-level JSON patch that turns ``before``'s properties into ``after``'s (what Twin.Update would say)."""
    old, new = _user_properties(before), _user_properties(after)
    patch: list[dict[str, Any]] = []
    for name in sorted(new):
        if name not in old:
            patch.append({"op": "add", "path": f"/{name}", "value": new[name]})
        elif old[name] != new[name]:
            patch.append({"op": "replace", "path": f"/{name}", "value": new[name]})
    patch.extend({"op": "remove", "path": f"/{name}"} for name in sorted(old) if name not in new)
    return patch


class ChangePoller:
    """Compares snapshots of the twins (by ``$etag``) and of the relationships; publishes the differences."""

    def __init__(self, twins: Callable[[], Iterator[dict[str, Any]]],
                 relationships: Callable[[], Iterator[dict[str, Any]]], hub: ChangeHub, interval: float = 1.0,
                 stop_when_routed: bool = True) -> None:
        self.twins = twins
        self.relationships = relationships
        self.hub = hub
        self.interval = interval
        self.stop_when_routed = stop_when_routed
        self._known: dict[str, dict[str, Any]] | None = None
        self._rels: dict[tuple[str, str], dict[str, Any]] | None = None
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: str | None = None

    def start(self) -> ChangePoller:
        self._thread = threading.Thread(target=self._run, name="explorer-poller", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self.hub.closed.wait(self.interval):
            if self.stop_when_routed and self.hub.route_seen.is_set():
                log.info("explorer: an event route delivers notifications; the change poller stops")
                return
            try:
                self.tick()
                self.last_error = None
            except Exception as exc:  # the source is down or refused: keep trying, the page shows the error
                self.errors += 1
                self.last_error = str(exc)
                log.warning("explorer: change poll failed: %s", exc)

    def tick(self) -> list[dict[str, Any]]:
        """One comparison; returns (and publishes) the changes since the last one. The first one only remembers."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        twins = {str(t["$dtId"]): t for t in self.twins() if "$dtId" in t}
        rels = {(str(r.get("$sourceId")), str(r.get("$relationshipId"))): r for r in self.relationships()}
        changes: list[dict[str, Any]] = []
        if self._known is not None and self._rels is not None:
            for twin_id, twin in twins.items():
                before = self._known.get(twin_id)
                model = (twin.get("$metadata") or {}).get("$model")
                if before is None:
                    changes.append({"kind": "twin.create", "twinId": twin_id, "modelId": model})
                elif before.get("$etag") != twin.get("$etag"):
                    changes.append({"kind": "twin.update", "twinId": twin_id, "modelId": model,
                                    "patch": twin_patch(before, twin)})
            changes.extend({"kind": "twin.delete", "twinId": twin_id} for twin_id in self._known
                           if twin_id not in twins)
            for key, rel in rels.items():
                if key not in self._rels:
                    changes.append({"kind": "relationship.create", "twinId": key[0], "relationshipId": key[1],
                                    "targetId": rel.get("$targetId"), "name": rel.get("$relationshipName")})
                elif self._rels[key].get("$etag") != rel.get("$etag"):
                    changes.append({"kind": "relationship.update", "twinId": key[0], "relationshipId": key[1],
                                    "targetId": rel.get("$targetId"), "name": rel.get("$relationshipName")})
            changes.extend({"kind": "relationship.delete", "twinId": key[0], "relationshipId": key[1],
                            "targetId": old.get("$targetId")} for key, old in self._rels.items() if key not in rels)
        self._known, self._rels = twins, rels
        for change in changes:
            self.hub.publish({**change, "via": "poll", "time": now})
        return changes
