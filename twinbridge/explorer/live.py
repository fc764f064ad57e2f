"""Live changes for the page: server-sent events fed by an ADT event route, or by a change poller until one exists.

*Route* (what ADT itself offers): an event route of the instance delivers its notifications to the explorer's
``POST /api/notifications`` (a webhook endpoint, Event Grid or CloudEvents schema). Notification shapes follow Learn's
concepts-event-notifications: the twin id is the ``subject`` (``<twin>/relationships/<id>`` for relationship events),
``Twin.Update``'s data is ``{modelId, patch}``, ``Twin.Create``/``Delete`` carry the twin.

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

log = logging.getLogger("twinbridge.explorer")

HEARTBEAT_SECONDS = 15.0
QUEUE_LIMIT = 1000  # per browser tab; a tab that stops reading loses its oldest events, never the server's memory

_KINDS = {
    "microsoft.digitaltwins.twin.create": "twin.create",
    "microsoft.digitaltwins.twin.update": "twin.update",
    "microsoft.digitaltwins.twin.delete": "twin.delete",
    "microsoft.digitaltwins.relationship.create": "relationship.create",
    "microsoft.digitaltwins.relationship.update": "relationship.update",
    "microsoft.digitaltwins.relationship.delete": "relationship.delete",
    "microsoft.iot.telemetry": "telemetry",
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


def from_notification(event: Any) -> dict[str, Any] | None:
    """One ADT notification (Event Grid or CloudEvents schema) as a change for the page; None when not ADT's.

    In Event Grid schema ADT nests the notification's body once more: ``data = {"data": …, "contenttype",
    "traceparent"}``. Telemetry names its twin in ``source`` (``<host>/digitaltwins/<id>``) in CloudEvents, where
    ``subject`` is the component path, and in ``subject`` in Event Grid schema (Learn: concepts-event-notifications).
    """
    if not isinstance(event, dict):
        return None
    cloud = "specversion" in event
    kind = _KINDS.get(str((event.get("type") if cloud else event.get("eventType")) or "").lower())
    if kind is None:
        return None
    subject = str(event.get("subject") or "")
    data = _json_object(event.get("data"))
    if not cloud and isinstance(data.get("data"), dict | str | bytes):
        data = _json_object(data.get("data"))
    change: dict[str, Any] = {"kind": kind, "via": "route", "time": event.get("time") or event.get("eventTime"),
                              "id": event.get("id")}
    if kind.startswith("relationship."):
        # subject "<source twin>/relationships/<relationship id>"; the body carries both ends when it has them
        source, _, rel_id = subject.partition("/relationships/")
        change.update(twinId=data.get("$sourceId") or source or None, relationshipId=data.get("$relationshipId")
                      or rel_id or None, targetId=data.get("$targetId"), name=data.get("$relationshipName"))
    elif kind == "telemetry":
        origin = str(event.get("source") or "")
        twin_id = origin.split("/digitaltwins/", 1)[1] if cloud and "/digitaltwins/" in origin else subject
        change.update(twinId=twin_id or None, component=subject if cloud and subject else None, data=data)
    else:
        change["twinId"] = subject or data.get("$dtId")
    if kind.endswith(".update"):
        change["patch"] = data.get("patch") if isinstance(data.get("patch"), list) else []
        change["modelId"] = data.get("modelId")
    elif kind == "twin.create":
        change["modelId"] = (data.get("$metadata") or {}).get("$model")
    return change if change.get("twinId") else None


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


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
