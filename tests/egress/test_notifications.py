"""Reading ADT notifications in all three wire forms, and validating each notification type."""

from __future__ import annotations

from typing import Any

import pytest

from shared.egress.notifications import (
    NOTIFICATION_TYPES,
    from_amqp,
    read_amqp_notification,
    read_notification,
)
from shared.errors import Code, PermanentError
from tests.egress import adt


def test_event_grid_schema_unwraps_the_doubly_nested_data() -> None:
    ce = adt.twin_update("room-1", [adt.replace("/Temperature", 21.5)], second=3.25)
    n = read_notification(adt.to_eventgrid(ce))
    assert n.schema == "eventgrid"
    assert n.data == {"modelId": adt.ROOM, "patch": [adt.replace("/Temperature", 21.5)]}
    assert n.cloudevent["datacontenttype"] == "application/json"
    assert n.cloudevent["traceparent"] == adt.TRACEPARENT
    assert (n.id, n.type, n.subject, n.twin_id, n.time) == (ce["id"], ce["type"], "room-1", "room-1", ce["time"])
    assert n.source == adt.EG_TOPIC  # the Event Grid schema has no source: the topic stands in


def test_cloudevents_json_is_kept_as_received() -> None:
    ce = adt.twin_update("room-1", [adt.replace("/Temperature", 21.5)])
    n = read_notification(ce)
    assert n.schema == "cloudevents" and n.cloudevent == ce and n.source == adt.SOURCE


@pytest.mark.parametrize("prefix", ["cloudEvents:", "cloudEvents_"])
def test_amqp_binding_accepts_both_prefixes(prefix: str) -> None:
    ce = adt.twin_update("room-1", [adt.replace("/Temperature", 21.5)])
    props, body = adt.to_amqp(ce, prefix)
    n = read_amqp_notification(props, body)
    assert n.schema == "amqp"
    assert n.data == ce["data"] and n.type == ce["type"] and n.subject == "room-1" and n.id == ce["id"]
    assert n.cloudevent["traceparent"] == adt.TRACEPARENT


def test_amqp_binding_with_bytes_names_and_values_and_foreign_properties() -> None:
    props = {b"cloudEvents:id": b"n1", b"cloudEvents:source": b"s", b"cloudEvents:specversion": b"1.0",
             b"cloudEvents:type": b"microsoft.iot.telemetry", "x-opt-other": "ignored"}
    assert from_amqp(props, b'{"t": 1}') == {"id": "n1", "source": "s", "specversion": "1.0",
                                             "type": "microsoft.iot.telemetry", "data": {"t": 1}}


def test_every_documented_type_validates() -> None:
    samples = [
        adt.twin_update("room-1", [adt.replace("/T", 1)]),
        adt.twin_lifecycle("room-1"), adt.twin_lifecycle("room-1", created=False),
        adt.relationship("floor-1", "r1", "room-1"), adt.relationship("floor-1", "r1", "room-1", created=False),
        {**adt.relationship("floor-1", "r1", "room-1"), "type": "Microsoft.DigitalTwins.Relationship.Update",
         "data": {"modelId": adt.FLOOR, "patch": [adt.replace("/since", "2026")]}},
        adt.telemetry("room-1", {"Temperature": 20}),
    ]
    assert {read_notification(s).type for s in samples} == NOTIFICATION_TYPES
    assert read_notification(samples[3]).twin_id == "floor-1"
    assert read_notification(samples[-1]).twin_id == "room-1"  # from the source …/digitaltwins/<id>


def _problem(raw: Any) -> tuple[str, str]:
    with pytest.raises(PermanentError) as info:
        read_notification(raw)
    return str(info.value.code), info.value.path


@pytest.mark.parametrize(("mutate", "code", "path"), [
    (lambda e: e.pop("id"), Code.SCHEMA_INVALID, "id"),
    (lambda e: e.update(specversion="0.3"), Code.SCHEMA_INVALID, "specversion"),
    (lambda e: e.update(type="Microsoft.DigitalTwins.Twin.Updated"), Code.EVENT_TYPE_NOT_ALLOWED, "type"),
    (lambda e: e.update(type="Microsoft.Iot.Telemetry"), Code.EVENT_TYPE_NOT_ALLOWED, "type"),  # case matters
    (lambda e: e.pop("subject"), Code.SCHEMA_INVALID, "subject"),
    (lambda e: e["data"].pop("modelId"), Code.SCHEMA_INVALID, "data.modelId"),
    (lambda e: e["data"].update(patch={"op": "add"}), Code.SCHEMA_INVALID, "data.patch"),
    (lambda e: e["data"]["patch"].append({"op": "move", "path": "/x"}), Code.SCHEMA_INVALID, "data.patch[1].op"),
    (lambda e: e["data"]["patch"].append({"op": "add", "path": "/x"}), Code.SCHEMA_INVALID, "data.patch[1].value"),
    (lambda e: e["data"]["patch"].append({"op": "add", "path": "x", "value": 1}), Code.SCHEMA_INVALID,
     "data.patch[1].path"),
])
def test_twin_update_problems_have_codes_and_paths(mutate: Any, code: Code, path: str) -> None:
    event = adt.twin_update("room-1", [adt.replace("/T", 1)])
    mutate(event)
    assert _problem(event) == (str(code), path)


def test_lifecycle_and_relationship_problems() -> None:
    bad_twin = adt.twin_lifecycle("room-1")
    bad_twin["data"]["$dtId"] = "room-2"
    assert _problem(bad_twin) == (str(Code.SUBJECT_MISMATCH), "data.$dtId")
    no_model = adt.twin_lifecycle("room-1")
    del no_model["data"]["$metadata"]
    assert _problem(no_model) == (str(Code.SCHEMA_INVALID), "data.$metadata.$model")
    rel = adt.relationship("floor-1", "r1", "room-1")
    rel["subject"] = "floor-1/relationships/r2"
    assert _problem(rel) == (str(Code.SUBJECT_MISMATCH), "subject")
    rel = adt.relationship("floor-1", "r1", "room-1")
    del rel["data"]["$targetId"]
    assert _problem(rel) == (str(Code.SCHEMA_INVALID), "data.$targetId")


def test_not_an_event() -> None:
    assert _problem([1, 2]) == (str(Code.NOT_AN_EVENT), "")
    assert _problem({"hello": "world"}) == (str(Code.NOT_AN_EVENT), "")
