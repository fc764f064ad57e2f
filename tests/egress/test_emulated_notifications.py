"""The egress reader on notifications produced by the ADT emulator itself, in the three forms ADT delivers them
(Event Grid schema, CloudEvents, the CloudEvents AMQP binding) — Learn concepts-event-notifications.

Each test names the reader bug it pins (issue 18's audit); each failed before its fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.adapters.forwarding.memory import MemoryForwardingStore
from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.sinks.jsonl_file import JsonlFileSink
from shared.adapters.twins.embedded.notifications import to_amqp
from shared.egress.config import load_egress
from shared.egress.notifications import (
    RELATIONSHIP_CREATE,
    RELATIONSHIP_DELETE,
    TELEMETRY,
    Notification,
    read_amqp_notification,
    read_notification,
)
from shared.egress.router import EgressRouter
from shared.filters.adt_route import compile_route_filter
from tests.support.emulated_notifications import HOST, Emitted, emit


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> Emitted:
    return emit(tmp_path_factory.mktemp("emulated"), component_telemetry=True)


def _three(emitted: Emitted, kind: str) -> list[Notification]:
    cloud, grid, (properties, body) = emitted.of_type(kind)
    return [read_notification(cloud, instance=HOST), read_notification(grid, instance=HOST),
            read_amqp_notification(properties, body)]


def test_eventgrid_telemetry_names_its_twin_in_subject_not_the_topic(emitted: Emitted) -> None:
    """Bug: the Event Grid path set source from ``topic`` and took the twin id from its last segment."""
    for cloud, grid in zip(emitted.cloudevents, emitted.eventgrid, strict=True):
        if cloud["type"] != TELEMETRY:
            continue
        assert read_notification(grid, instance=HOST).twin_id == "room1"
        assert read_notification(grid).twin_id == "room1"  # without the instance name too
        assert read_notification(cloud).twin_id == "room1"


@pytest.mark.parametrize("kind", ["Microsoft.DigitalTwins.Twin.Create", "Microsoft.DigitalTwins.Twin.Update",
                                  RELATIONSHIP_CREATE, "Microsoft.DigitalTwins.Relationship.Update", TELEMETRY,
                                  RELATIONSHIP_DELETE, "Microsoft.DigitalTwins.Twin.Delete"])
def test_one_notification_is_one_forwarding_key_and_one_source_in_every_schema(emitted: Emitted, kind: str) -> None:
    """Bug: the Event Grid schema has no ``source`` (its ``topic`` stood in), so a route filter on ``source``
    (documented in how-to-create-routes) never matched and the forwarding key differed between the schemas."""
    forms = _three(emitted, kind)
    assert len({n.forwarding_id for n in forms}) == 1
    assert len({n.source for n in forms}) == 1
    assert len({n.twin_id for n in forms}) == 1
    on_source = compile_route_filter(f"source = '{HOST}'" if kind != TELEMETRY
                                     else f"source = '{HOST}/digitaltwins/room1'")
    assert all(on_source.matches(n.cloudevent) for n in forms)


@pytest.mark.parametrize("kind", [RELATIONSHIP_CREATE, RELATIONSHIP_DELETE])
def test_relationship_without_source_id_takes_it_from_the_subject(emitted: Emitted, kind: str) -> None:
    """Bug: Relationship.Create/Delete without ``$sourceId`` (Learn's example body has none) were refused."""
    cloud, grid, (properties, body) = emitted.of_type(kind)
    cloud = orjson.loads(orjson.dumps(cloud))
    del cloud["data"]["$sourceId"]
    grid = orjson.loads(orjson.dumps(grid))
    del grid["data"]["data"]["$sourceId"]
    data = orjson.loads(body)
    del data["$sourceId"]
    forms = [read_notification(cloud, instance=HOST), read_notification(grid, instance=HOST),
             read_amqp_notification(properties, orjson.dumps(data))]
    assert {n.twin_id for n in forms} == {"floor1"}


def test_relationship_subject_still_has_to_name_the_relationship(emitted: Emitted) -> None:
    cloud, _, _ = emitted.of_type(RELATIONSHIP_CREATE)
    hostile = {**cloud, "data": {k: v for k, v in cloud["data"].items() if k != "$sourceId"},
               "subject": "floor1/relationships/another"}
    with pytest.raises(Exception, match="subject"):
        read_notification(hostile)


def test_event_grid_placeholder_time_is_not_a_time(emitted: Emitted) -> None:
    """Bug: Event Grid telemetry's ``eventTime`` 0001-01-01T00:00:00Z was passed through as the time."""
    cloud, grid, (properties, body) = emitted.of_type(TELEMETRY)
    assert grid["eventTime"] == "0001-01-01T00:00:00Z" and "time" not in cloud
    for notification in (read_notification(grid), read_notification(cloud),
                         read_amqp_notification(properties, body)):
        assert notification.time is None
        assert "time" not in notification.cloudevent


def test_amqp_time_sent_as_a_typed_timestamp_is_read(emitted: Emitted) -> None:
    """Bug: ``cloudEvents:time`` as an AMQP timestamp (a datetime once decoded) was refused as not a string."""
    cloud, _, _ = emitted.of_type("Microsoft.DigitalTwins.Twin.Update")
    properties, body = to_amqp(cloud, typed_time=True)
    notification = read_amqp_notification(properties, body)
    assert notification.time is not None and notification.time[:26] == cloud["time"][:26]
    assert notification.time.endswith("Z")


def test_telemetry_content_type_and_data_schema_survive_every_form(emitted: Emitted) -> None:
    """Real telemetry: ``datacontenttype`` application/json-patch+json; charset=utf-8, ``dataschema`` the model."""
    cloud, grid, _ = emitted.of_type(TELEMETRY)
    for notification in (read_notification(cloud), read_notification(grid)):
        assert notification.cloudevent["datacontenttype"] == "application/json-patch+json; charset=utf-8"
        assert notification.cloudevent["dataschema"] == "dtmi:test:Room;1"
        assert notification.data == {"reading": 22.0}


def _router(tmp_path: Path) -> tuple[EgressRouter, Path, MemoryQuarantine]:
    out = tmp_path / "out.jsonl"
    config = load_egress({"endpoints": {"file": {"kind": "file", "path": str(out)}},
                          "routes": [{"name": "all", "filter": "true", "endpoint": "file"}]})
    quarantine = MemoryQuarantine()
    router = EgressRouter(config, {"file": JsonlFileSink(out)}, MemoryForwardingStore(), quarantine,
                          instance=HOST)
    return router, out, quarantine


def test_router_forwards_each_notification_once_whatever_schema_it_came_in(emitted: Emitted,
                                                                           tmp_path: Path) -> None:
    """Every emulated notification through one router three times (one per schema): each forwarded once, none
    quarantined — the second and third schema are recognised as the same notifications."""
    router, out, quarantine = _router(tmp_path)
    reports = [router.process(emitted.eventgrid), router.process(emitted.cloudevents),
               router.process_amqp(emitted.amqp)]
    assert not quarantine.list()
    assert reports[0].sent == len(emitted.cloudevents)
    assert reports[1].sent == reports[2].sent == 0
    forwarded: list[dict[str, Any]] = [orjson.loads(line)["event"] for line in out.read_bytes().splitlines()]
    assert sorted(e["id"] for e in forwarded) == sorted(e["id"] for e in emitted.cloudevents)
    telemetry = [e for e in forwarded if e["type"] == TELEMETRY]
    assert {e["source"] for e in telemetry} == {f"{HOST}/digitaltwins/room1"}


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_through_the_functions_event_grid_binding_every_notification_reads_the_same(emitted: Emitted,
                                                                                    schema: str) -> None:
    """The door rebuilds the wire event from the binding's typed object (``to_notification``): the binding turns
    ``eventTime`` into a datetime, so the placeholder comes back as 0001-01-01T00:00:00+00:00 — still no time."""
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    from functions.route_twin_changes import to_notification

    events = emitted.eventgrid if schema == "eventgrid" else emitted.cloudevents
    for raw, cloud in zip(events, emitted.cloudevents, strict=True):
        bound = EventGridEventInConverter.decode(Datum(orjson.dumps(raw).decode(), "json"), trigger_metadata=None)
        notification = read_notification(to_notification(bound), instance=HOST)
        direct = read_notification(cloud, instance=HOST)
        assert (notification.forwarding_id, notification.twin_id, notification.type) == \
            (direct.forwarding_id, direct.twin_id, direct.type)
        assert (notification.time is None) == (direct.time is None)
        assert notification.data == direct.data


def test_results_name_the_twin_not_the_component(emitted: Emitted, tmp_path: Path) -> None:
    """The observability contract logs results by twin id: component telemetry's subject is the component."""
    router, _, _ = _router(tmp_path)
    report = router.process([e for e in emitted.cloudevents if e["type"] == TELEMETRY])
    assert [r.twin_id for r in report.results] == ["room1", "room1"]
