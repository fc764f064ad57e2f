"""Live changes: ADT notifications (as Learn's concepts-event-notifications shows them) and the change poller.

Notification shapes: https://learn.microsoft.com/azure/digital-twins/concepts-event-notifications — Event Grid
schema nests the body in ``data.data``; the twin id is the ``subject`` (``<twin>/relationships/<id>`` for
relationships); telemetry's CloudEvents ``source`` ends in ``/digitaltwins/<twin id>`` and its type is lower-case.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.wiring import embedded_twin_store
from tests.explorer.conftest import DEVICE, catalog, seed
from twinbridge.explorer.live import ChangeHub, ChangePoller, from_notification, twin_patch

PATCH = [{"value": 21.5, "path": "/temperature", "op": "replace"}]
SOURCE = "contoso-adt.api.weu.digitaltwins.azure.net"
TRACE = "00-7d8f1c2b3a4e5f60718293a4b5c6d7e8-0123456789abcdef-01"


def event_grid(kind: str, subject: str, body: Any) -> dict[str, Any]:
    return {"id": "n-1", "subject": subject, "eventType": kind, "dataVersion": "1.0", "metadataVersion": "1",
            "eventTime": "2026-11-23T10:00:01.0000000Z", "topic": "/subscriptions/x/topics/adt-changes",
            "data": {"data": body, "contenttype": "application/json", "traceparent": TRACE}}


def cloud(kind: str, subject: str, body: Any, source: str = SOURCE) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "n-2", "source": source, "type": kind, "subject": subject,
            "time": "2026-11-23T10:00:02.0000000Z", "datacontenttype": "application/json", "traceparent": TRACE,
            "data": body}


@pytest.mark.parametrize("wrap", [event_grid, cloud], ids=["eventgrid", "cloudevents"])
def test_twin_update_in_both_schemas(wrap: Any) -> None:
    change = from_notification(wrap("Microsoft.DigitalTwins.Twin.Update", "dev-42",
                                    {"modelId": DEVICE, "patch": PATCH}))
    assert change is not None
    assert (change["kind"], change["twinId"], change["patch"], change["modelId"], change["via"]) == \
        ("twin.update", "dev-42", PATCH, DEVICE, "route")


@pytest.mark.parametrize("wrap", [event_grid, cloud], ids=["eventgrid", "cloudevents"])
def test_relationship_create_names_both_ends(wrap: Any) -> None:
    body = {"$relationshipId": "contains-dev-42", "$sourceId": "site-1", "$targetId": "dev-42",
            "$relationshipName": "contains", "$etag": 'W/"r1"'}
    change = from_notification(wrap("Microsoft.DigitalTwins.Relationship.Create",
                                    "site-1/relationships/contains-dev-42", body))
    assert change is not None
    assert (change["kind"], change["twinId"], change["relationshipId"], change["targetId"], change["name"]) == \
        ("relationship.create", "site-1", "contains-dev-42", "dev-42", "contains")


def test_relationship_delete_without_source_in_body_uses_the_subject() -> None:
    body = {"$relationshipId": "r-9", "$targetId": "dev-1", "$relationshipName": "contains"}  # Learn's: no $sourceId
    change = from_notification(cloud("Microsoft.DigitalTwins.Relationship.Delete", "site-1/relationships/r-9", body))
    assert change is not None
    assert (change["twinId"], change["relationshipId"], change["targetId"]) == ("site-1", "r-9", "dev-1")


def test_telemetry_twin_id_comes_from_source_in_cloudevents_and_subject_in_event_grid() -> None:
    ce = from_notification(cloud("microsoft.iot.telemetry", "thermostat1", {"t": 1},
                                 source=f"{SOURCE}/digitaltwins/dev-7"))
    eg = from_notification({"id": "x", "subject": "dev-7", "eventType": "microsoft.iot.telemetry",
                            "data": {"data": {"t": 1}, "contenttype": "application/json"}, "dataVersion": "1.0",
                            "eventTime": "0001-01-01T00:00:00Z"}, instance=SOURCE)
    assert ce is not None and eg is not None
    assert (ce["twinId"], ce["component"], ce["data"]) == ("dev-7", "thermostat1", {"t": 1})
    assert (eg["twinId"], eg["component"], eg["data"], eg["time"]) == ("dev-7", None, {"t": 1}, None)  # no time


def test_create_carries_the_model() -> None:
    twin = {"$dtId": "dev-9", "$etag": 'W/"e"', "$metadata": {"$model": DEVICE}}
    change = from_notification(cloud("Microsoft.DigitalTwins.Twin.Create", "dev-9", twin))
    assert change is not None and (change["kind"], change["twinId"], change["modelId"]) == ("twin.create", "dev-9",
                                                                                            DEVICE)


@pytest.mark.parametrize("event", [
    None, [], "text", {"eventType": "Microsoft.Devices.DeviceTelemetry", "subject": "devices/d1", "data": {}},
    {"specversion": "1.0", "type": "Microsoft.DigitalTwins.Twin.Update", "data": {"patch": []}},  # no twin id
    {"eventType": "Microsoft.DigitalTwins.Twin.Update", "subject": "", "data": "{not json"},
    # what the app would quarantine is not shown either: a twin as a JSON string, an update without its model
    cloud("Microsoft.DigitalTwins.Twin.Create", "dev-9", orjson.dumps({"$dtId": "dev-9", "$metadata": {
        "$model": DEVICE}}).decode()),
    cloud("Microsoft.DigitalTwins.Twin.Update", "dev-42", {"patch": PATCH}),
])
def test_other_or_broken_events_are_not_changes(event: Any) -> None:
    assert from_notification(event) is None


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_hostile_notifications_never_raise(value: Any) -> None:
    for kind in ("Microsoft.DigitalTwins.Twin.Update", "Microsoft.DigitalTwins.Relationship.Create",
                 "microsoft.iot.telemetry"):
        for event in ({"eventType": kind, "subject": "s", "data": value},
                      {"specversion": "1.0", "type": kind, "subject": value, "source": value, "data": value}):
            change = from_notification(event)
            assert change is None or isinstance(change["twinId"], str)


def test_twin_patch_says_what_changed() -> None:
    before = {"$dtId": "a", "$etag": "1", "t": 1, "gone": True, "same": "x"}
    after = {"$dtId": "a", "$etag": "2", "t": 2, "new": [1], "same": "x"}
    assert twin_patch(before, after) == [{"op": "add", "path": "/new", "value": [1]},
                                         {"op": "replace", "path": "/t", "value": 2},
                                         {"op": "remove", "path": "/gone"}]


def poller_over(graph: EmbeddedTwinStore, hub: ChangeHub) -> ChangePoller:
    def rels() -> Any:
        return iter([r for t in graph.list_twins() for r in graph.list_relationships(t["$dtId"])])
    return ChangePoller(lambda: graph.list_twins(), rels, hub)


def test_poller_reports_each_kind_of_change_once() -> None:
    graph = embedded_twin_store(catalog())
    seed(graph)
    hub = ChangeHub()
    inbox = hub.subscribe()
    poller = poller_over(graph, hub)
    assert poller.tick() == []  # the first look only remembers
    graph.patch_twin("dev-01", [{"op": "replace", "path": "/temperature", "value": 30.5}], "*")
    graph.create_twin("dev-77", {"$metadata": {"$model": DEVICE}})
    graph.upsert_relationship("site-north", "contains-dev-77", {"$targetId": "dev-77", "$relationshipName": "contains"})
    graph.delete_relationship("site-south", "contains-dev-05")
    graph.graph.delete_twin("dev-05")  # the raw DELETE (its one relationship is gone already)
    kinds = sorted((c["kind"], c["twinId"]) for c in poller.tick())
    assert kinds == [("relationship.create", "site-north"), ("relationship.delete", "site-south"),
                     ("twin.create", "dev-77"), ("twin.delete", "dev-05"), ("twin.update", "dev-01")]
    update = next(c for c in (inbox.get_nowait() for _ in range(5)) if c["kind"] == "twin.update")
    assert update["patch"] == [{"op": "replace", "path": "/temperature", "value": 30.5}]
    assert update["via"] == "poll" and update["seq"] >= 1
    assert poller.tick() == []  # nothing new: nothing published


def test_poller_stops_once_a_route_delivers() -> None:
    graph = embedded_twin_store(catalog())
    hub = ChangeHub()
    poller = poller_over(graph, hub)
    poller.interval = 0.01
    hub.route_seen.set()
    poller.start()
    assert poller._thread is not None
    poller._thread.join(timeout=2)
    assert not poller._thread.is_alive()
    hub.close()


def test_stream_sends_changes_as_server_sent_events_and_ends_on_close() -> None:
    hub = ChangeHub()
    stream = hub.stream(heartbeat=0.05)
    assert next(stream).startswith(b"retry: 2000")
    hub.publish({"kind": "twin.update", "twinId": "a", "via": "route"})
    assert next(stream) == b'id: 1\nevent: change\ndata: {"kind":"twin.update","twinId":"a","via":"route","seq":1}\n\n'
    assert next(stream) == b": keep-alive\n\n"
    closer = threading.Timer(0.01, hub.close)
    closer.start()
    assert all(chunk == b": keep-alive\n\n" for chunk in stream)  # then it ends
    assert hub.subscribers() == 0 and hub.counts["route"] == 1
