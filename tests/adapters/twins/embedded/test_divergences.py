"""Each divergence the audit found between the old embedded graph (shared/adapters/twins/embedded_graph.py with
shared/ingest/dtdl.py, both retired in issue 17: the app's embedded store is now the engine) and ADT, as one
scenario on the engine, where it must give ADT's answer. Each ran on the old graph too as a strict xfail until
that graph was removed (the proof that each test fails without the fix); ``@divergence`` keeps what it did.

Each scenario cites its source: a spec example (azure-rest-api-specs digitaltwins 2023-10-31 examples/), the spec's
operation descriptions, or a Learn page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from shared.adapters.twins.embedded import AdtError, TwinGraph

V3 = "dtmi:dtdl:context;3"
ROOM = "dtmi:ex:Room;1"
HVAC = "dtmi:ex:Hvac;1"
MODELS = [
    {"@id": HVAC, "@type": "Interface", "@context": V3,
     "contents": [{"@type": "Property", "name": "mode", "schema": "string"}]},
    {"@id": ROOM, "@type": "Interface", "@context": V3,
     "contents": [{"@type": "Property", "name": "temp", "schema": "double"},
                  {"@type": "Property", "name": "pos", "schema": {"@type": "Object", "fields": [
                      {"name": "x", "schema": "double"}]}},
                  {"@type": "Property", "name": "seen", "schema": "dateTime"},
                  {"@type": "Property", "name": "tags", "schema": {"@type": "Array", "elementSchema": "string"}},
                  {"@type": "Component", "name": "hvac", "schema": HVAC},
                  {"@type": "Relationship", "name": "contains", "properties": [
                      {"@type": "Property", "name": "since", "schema": "dateTime"}]}]},
]


T = TypeVar("T")


class Outcome(Exception):
    def __init__(self, status: int, code: str = "") -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code = status, code


class New:
    """The engine, called as the REST surface calls it."""

    def __init__(self, models: list[dict[str, Any]]) -> None:
        self.graph = TwinGraph()
        self.graph.add_models(models)

    def call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self, "_" + name)(*args)
        except AdtError as error:
            raise Outcome(error.status, error.code) from None

    def _put(self, twin_id: str, body: dict[str, Any]) -> Any:
        return self.graph.put_twin(twin_id, body)

    def _get(self, twin_id: str) -> Any:
        return self.graph.get_twin(twin_id)

    def _relate(self, source: str, rel_id: str, body: dict[str, Any]) -> Any:
        return self.graph.put_relationship(source, rel_id, body)

    def _relationships(self, twin_id: str) -> Any:
        return self.graph.list_relationships(twin_id)

    def _delete(self, twin_id: str) -> Any:
        return self.graph.delete_twin(twin_id)


@pytest.fixture
def engine() -> type[New]:
    return New


def divergence(old_behaviour: str) -> Callable[[T], T]:
    """A scenario the old embedded graph got wrong (``old_behaviour``); until it was retired each ran on it too as a
    strict xfail, the proof that the test fails without the fix. Now it runs on the engine only: the note stays on
    the test (``old_behaviour``) as the record of what it caught."""
    def note(test: T) -> T:
        test.old_behaviour = old_behaviour  # type: ignore[attr-defined]
        return test

    return note


def room(**props: Any) -> dict[str, Any]:
    return {"$metadata": {"$model": ROOM}, "hvac": {"$metadata": {}}, **props}


def expect(engine: Any, status: int, code: str, name: str, *args: Any) -> None:
    with pytest.raises(Outcome) as caught:
        engine.call(name, *args)
    assert (caught.value.status, caught.value.code) == (status, code)


@divergence("old graph refused $metadata/<prop>/sourceTime in a PUT body")
def test_source_time_in_a_put_body_is_kept(engine):
    """PutTwinAdvancedExample.json: $metadata.property1.sourceTime is accepted and returned."""
    e = engine(MODELS)
    twin = e.call("put", "t", {**room(temp=1.0), "$metadata": {"$model": ROOM,
                                                                "temp": {"sourceTime": "2022-05-31T12:00:01Z"}}})
    assert twin["$metadata"]["temp"]["sourceTime"] == "2022-05-31T12:00:01Z"


@divergence("old graph placed component metadata at the top level and gave the component none")
def test_component_metadata_lives_in_the_component(engine):
    """GetTwin.json: component1.$metadata holds $lastUpdateTime and componentProperty's lastUpdateTime; the
    top-level $metadata has no entry for the component."""
    e = engine(MODELS)
    twin = e.call("put", "t", room(hvac={"$metadata": {}, "mode": "cool"}))
    assert "hvac" not in twin["$metadata"]
    assert set(twin["hvac"]["$metadata"]) == {"$lastUpdateTime", "mode"}


@divergence("old graph answered 400 TargetTwinNotFound")
def test_relationship_to_a_missing_target_is_404(engine):
    """Spec, DigitalTwins_AddRelationship: 404 TargetTwinNotFound."""
    e = engine(MODELS)
    e.call("put", "a", room())
    expect(e, 404, "TargetTwinNotFound", "relate", "a", "r", {"$targetId": "ghost", "$relationshipName": "contains"})


@divergence("old graph listed [] for a missing twin")
def test_listing_relationships_of_a_missing_twin_is_404(engine):
    """Spec, DigitalTwins_ListRelationships: 404 DigitalTwinNotFound."""
    expect(engine(MODELS), 404, "DigitalTwinNotFound", "relationships", "ghost")


@divergence("old graph deleted a missing twin silently")
def test_deleting_a_missing_twin_is_404(engine):
    """Spec, DigitalTwins_Delete (DeleteTwin.json): 404 DigitalTwinNotFound."""
    expect(engine(MODELS), 404, "DigitalTwinNotFound", "delete", "ghost")


@divergence("old graph accepted components of any shape and did not require them")
def test_components_are_required_and_validated(engine):
    """Learn how-to-manage-twin: every component must be initialised at creation (even as {"$metadata": {}}),
    and its properties follow the component's model."""
    e = engine(MODELS)
    expect(e, 400, "ValidationFailed", "put", "a", {"$metadata": {"$model": ROOM}})
    expect(e, 400, "ValidationFailed", "put", "b", room(hvac={"$metadata": {}, "mode": 5}))
    expect(e, 400, "ValidationFailed", "put", "c", room(hvac={"$metadata": {}, "fan": "on"}))


@divergence("old graph accepted undeclared Object fields and any dateTime string")
def test_object_fields_and_date_time_formats_are_checked(engine):
    """Learn concepts-models (Object schemas; dateTime is RFC 3339)."""
    e = engine(MODELS)
    expect(e, 400, "ValidationFailed", "put", "a", room(pos={"x": 1.0, "y": 2.0}))
    expect(e, 400, "ValidationFailed", "put", "b", room(seen="yesterday"))


@divergence("old graph refused DTDL v3 Array properties")
def test_v3_array_properties_are_accepted(engine):
    """Learn concepts-models: DTDL v3 allows Array schemas in properties."""
    assert engine(MODELS).call("put", "a", room(tags=["x", "y"]))["tags"] == ["x", "y"]


@divergence("old graph never checked relationship names or properties")
def test_relationship_names_and_properties_are_checked(engine):
    """Spec, DigitalTwins_AddRelationship: 400 ValidationFailed "The relationship content is invalid"; a
    relationship must be declared by the source's model with its properties' schemas."""
    e = engine(MODELS)
    e.call("put", "a", room())
    e.call("put", "b", room())
    expect(e, 400, "ValidationFailed", "relate", "a", "r1", {"$targetId": "b", "$relationshipName": "undeclared"})
    expect(e, 400, "ValidationFailed", "relate", "a", "r2",
           {"$targetId": "b", "$relationshipName": "contains", "since": "not a date"})
    expect(e, 400, "ValidationFailed", "relate", "a", "r3",
           {"$targetId": "b", "$relationshipName": "contains", "extra": 1})


CHAIN = [
    {"@id": "dtmi:ex:Child;1", "@type": "Interface", "@context": V3, "extends": "dtmi:ex:Parent;1",
     "contents": [{"@type": "Property", "name": "child", "schema": "string"}]},
    {"@id": "dtmi:ex:Parent;1", "@type": "Interface", "@context": V3, "extends": "dtmi:ex:Grand;1",
     "contents": [{"@type": "Property", "name": "parent", "schema": "string"}]},
    {"@id": "dtmi:ex:Grand;1", "@type": "Interface", "@context": V3,
     "contents": [{"@type": "Property", "name": "grand", "schema": "string"}]},
]


@divergence("old catalog lost grandparent properties when a chain was loaded child-first")
def test_grandparent_properties_survive_a_child_first_upload(engine):
    """DTDL: extends is transitive; ADT resolves a model's references within the upload, in any order."""
    twin = engine(CHAIN).call("put", "t", {"$metadata": {"$model": "dtmi:ex:Child;1"}, "grand": "g"})
    assert twin["grand"] == "g"


@divergence("old catalog crashed on an inline extends object")
def test_inline_extends(engine):
    """DTDL v2/v3: extends may hold an inline Interface."""
    inline = [{"@id": "dtmi:ex:A;1", "@type": "Interface", "@context": V3,
               "extends": [{"@id": "dtmi:ex:B;1", "@type": "Interface",
                            "contents": [{"@type": "Property", "name": "b", "schema": "string"}]}]}]
    assert engine(inline).call("put", "t", {"$metadata": {"$model": "dtmi:ex:A;1"}, "b": "x"})["b"] == "x"
