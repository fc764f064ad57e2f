"""The data-plane spec's examples, replayed through the real ``DigitalTwinsClient`` against ``adt serve``.

Source: azure-rest-api-specs, specification/digitaltwins/data-plane/Microsoft.DigitalTwins/stable/2023-10-31/
examples/<File>.json (each test names its file). The fixtures are ours, written from the examples' facts: the status
each operation answers and the shape of its body (keys, nesting, where ``$metadata`` sits). Values that only say
"a timestamp" or "an ETag" are checked for form, not copied.
"""

from __future__ import annotations

import re

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.digitaltwins.core import DigitalTwinsEventRoute

pytestmark = pytest.mark.integration

ETAG = re.compile(r'^W/"[0-9a-f-]{36}"$')
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")

INTERFACE = "dtmi:com:example:interfaces:interfaceName;1"
COMPONENT = "dtmi:com:example:interfaces:componentName;1"
SAMPLE = "dtmi:com:example:Sample;1"
DEVICE = "dtmi:com:example:SampleDeviceModel;1"

# ModelAdd.json's model, verbatim in its facts.
SAMPLE_MODEL = {
    "@id": SAMPLE, "@type": "Interface", "displayName": "Sample Interface", "@context": "dtmi:dtdl:context;2",
    "contents": [
        {"@type": "Property", "name": "name", "displayName": "Sample instance name", "schema": "string"},
        {"@type": "Property", "name": "temp", "displayName": "Sample instance temperature", "schema": "integer"},
        {"@type": "Property", "name": "comfortIndex", "displayName": "Sample instance comfort index",
         "schema": "integer"},
        {"@type": "Relationship", "name": "Contains"},
    ],
}
# ModelsGetWithDependenciesAndIncludeModelDefinition.json: a device model whose component is the Sample.
DEVICE_MODEL = {
    "@id": DEVICE, "@type": "Interface", "displayName": "My Device Model", "@context": "dtmi:dtdl:context;2",
    "contents": [{"@type": "Component", "name": "Sample", "schema": SAMPLE}],
}
# The twin examples (PutTwinAdvancedExample.json, GetTwin.json, PatchTwinAdvancedExample.json): property1 a number,
# property2 an object of two strings, component1 with componentProperty, plus property3 that the patch removes
# and the relationship the relationship examples create.
COMPONENT_MODEL = {
    "@id": COMPONENT, "@type": "Interface", "@context": "dtmi:dtdl:context;2",
    "contents": [
        {"@type": "Property", "name": "componentProperty", "schema": "string"},
        {"@type": "Property", "name": "property1", "schema": "integer"},
        {"@type": "Property", "name": "property2", "schema": "string"},
        {"@type": "Property", "name": "property3", "schema": {"@type": "Object", "fields": [
            {"name": "subProperty1", "schema": "string"}]}},
    ],
}
INTERFACE_MODEL = {
    "@id": INTERFACE, "@type": "Interface", "@context": "dtmi:dtdl:context;2",
    "contents": [
        {"@type": "Property", "name": "property1", "schema": "integer"},
        {"@type": "Property", "name": "property2", "schema": {"@type": "Object", "fields": [
            {"name": "subProperty1", "schema": "string"}, {"name": "subProperty2", "schema": "string"}]}},
        {"@type": "Property", "name": "property3", "schema": "string"},
        {"@type": "Component", "name": "component1", "schema": COMPONENT},
        {"@type": "Component", "name": "myComponent", "schema": COMPONENT},
        {"@type": "Relationship", "name": "myRelationship", "properties": [
            {"@type": "Property", "name": "relationshipProperty1", "schema": "integer"},
            {"@type": "Property", "name": "relationshipProperty2", "schema": "string"}]},
    ],
}


EXAMPLE_TWIN = {  # PutTwinAdvancedExample.json's twin
    "$metadata": {"$model": INTERFACE, "property1": {"sourceTime": "2022-05-31T12:00:01.000125009Z"}},
    "property1": 1,
    "property2": {"subProperty1": "some value", "subProperty2": "some other value"},
    "component1": {"$metadata": {"componentProperty": {"sourceTime": "2022-05-31T12:00:00.000125009Z"}},
                   "componentProperty": "some value"},
    "myComponent": {"$metadata": {}},
}


def put_example_twin(adt, twin_id="myNewTwinId", **extra):
    """PutTwinAdvancedExample.json's twin, with ``extra`` properties."""
    return adt.upsert_digital_twin(twin_id, {**EXAMPLE_TWIN, **extra})


@pytest.fixture
def models(adt):
    adt.create_models([COMPONENT_MODEL, INTERFACE_MODEL])
    return adt


# ---- models --------------------------------------------------------------------------------------------------
def test_model_add(adt):
    """ModelAdd.json: 201 with one model data per model: id, displayName as a language map, uploadTime,
    decommissioned false."""
    created = adt.create_models([SAMPLE_MODEL])
    assert len(created) == 1
    data = created[0].as_dict()
    assert data["id"] == SAMPLE and data["display_name"] == {"en": "Sample Interface"}
    assert data["decommissioned"] is False and data["upload_time"] is not None
    assert data.get("model") is None  # the definition is not echoed


def test_model_get_by_id_with_and_without_definition(adt):
    """ModelGetById.json / ModelGetByIdWithIncludeModelDefinition.json."""
    adt.create_models([SAMPLE_MODEL])
    assert adt.get_model(SAMPLE).model is None
    assert adt.get_model(SAMPLE, include_model_definition=True).model["@id"] == SAMPLE
    with pytest.raises(ResourceNotFoundError) as caught:
        adt.get_model("dtmi:com:example:Missing;1")
    assert caught.value.error.code == "ModelNotFound"


def test_models_get_with_dependencies_and_definition(adt):
    """ModelsGetWithDependenciesAndIncludeModelDefinition.json: dependenciesFor the device model lists the
    Sample (its component's model) and the device model, with their definitions."""
    adt.create_models([DEVICE_MODEL, SAMPLE_MODEL])  # order in the request does not matter
    listed = list(adt.list_models(dependencies_for=[DEVICE], include_model_definition=True))
    assert [m.id for m in listed] == [SAMPLE, DEVICE]
    assert all(m.model is not None and m.decommissioned is False for m in listed)
    assert listed[1].display_name == {"en": "My Device Model"}


def test_models_get_lists_all(adt):
    """ModelsGet.json."""
    adt.create_models([SAMPLE_MODEL, DEVICE_MODEL])
    assert sorted(m.id for m in adt.list_models()) == sorted([DEVICE, SAMPLE])


def test_model_update_decommissioned(adt):
    """ModelUpdateDecommissioned.json: 204; then creating a twin of it is 400 ModelDecommissioned."""
    adt.create_models([SAMPLE_MODEL])
    adt.decommission_model(SAMPLE)
    assert adt.get_model(SAMPLE).decommissioned is True
    with pytest.raises(HttpResponseError) as caught:
        adt.upsert_digital_twin("t", {"$metadata": {"$model": SAMPLE}})
    assert caught.value.status_code == 400 and caught.value.error.code == "ModelDecommissioned"


def test_delete_model_and_references(adt):
    """DeleteModel.json: 204; a model another model references is 409 ModelReferencesNotDeleted."""
    adt.create_models([SAMPLE_MODEL, DEVICE_MODEL])
    with pytest.raises(HttpResponseError) as caught:
        adt.delete_model(SAMPLE)
    assert caught.value.status_code == 409 and caught.value.error.code == "ModelReferencesNotDeleted"
    adt.delete_model(DEVICE)
    adt.delete_model(SAMPLE)
    assert list(adt.list_models()) == []


def test_model_already_exists(adt):
    adt.create_models([SAMPLE_MODEL])
    with pytest.raises(ResourceExistsError) as caught:
        adt.create_models([SAMPLE_MODEL])
    assert caught.value.status_code == 409 and caught.value.error.code == "ModelAlreadyExists"


# ---- twins ---------------------------------------------------------------------------------------------------
def test_put_twin_advanced_example(models):
    """PutTwinAdvancedExample.json (If-None-Match: *): 200 with the stored twin — sourceTime kept under
    $metadata/property1 and under component1's own $metadata, each component with its $lastUpdateTime."""
    twin = models.upsert_digital_twin("myNewTwinId", EXAMPLE_TWIN, match_condition=MatchConditions.IfMissing)
    assert twin["$dtId"] == "myNewTwinId" and ETAG.match(twin["$etag"])
    meta = twin["$metadata"]
    assert meta["$model"] == INTERFACE and TIMESTAMP.match(meta["$lastUpdateTime"])
    assert meta["property1"]["sourceTime"] == "2022-05-31T12:00:01.000125009Z"
    assert TIMESTAMP.match(meta["property1"]["lastUpdateTime"])
    assert set(meta["property2"]) == {"lastUpdateTime"}
    assert "component1" not in meta  # a component's metadata lives in the component
    component = twin["component1"]
    assert component["componentProperty"] == "some value"
    assert TIMESTAMP.match(component["$metadata"]["$lastUpdateTime"])
    assert component["$metadata"]["componentProperty"]["sourceTime"] == "2022-05-31T12:00:00.000125009Z"
    assert models.get_digital_twin("myNewTwinId") == twin  # GetTwin.json: GET returns the same document
    with pytest.raises(HttpResponseError) as caught:  # If-None-Match: * on an existing twin
        models.upsert_digital_twin(
            "myNewTwinId", {"$metadata": {"$model": INTERFACE}, "component1": {}, "myComponent": {}},
            match_condition=MatchConditions.IfMissing)
    assert caught.value.status_code == 412 and caught.value.error.code == "PreconditionFailed"


def test_put_twin_basic_example_upserts(models):
    """PutTwinBasicExample.json: without If-None-Match a PUT replaces the twin (200) and the ETag changes."""
    first = put_example_twin(models)
    second = models.upsert_digital_twin("myNewTwinId", {
        "$metadata": {"$model": INTERFACE}, "property1": 2, "component1": {"$metadata": {}},
        "myComponent": {"$metadata": {}}})
    assert second["$etag"] != first["$etag"] and second["property1"] == 2 and "property2" not in second


def test_patch_twin_advanced_example(models):
    """PatchTwinAdvancedExample.json: replace, replace of $metadata/property1/sourceTime, add inside an object,
    remove — 204. (The example adds the number 1 to property2/subProperty1, which its own PUT example sets to a
    string; one schema cannot take both, so the value here is a string.)"""
    put_example_twin(models, property3="to be removed")
    models.update_digital_twin("myNewTwinId", [
        {"op": "replace", "path": "/property1", "value": 1},
        {"op": "replace", "path": "/$metadata/property1/sourceTime", "value": "2022-05-31T12:00:01.000125009Z"},
        {"op": "add", "path": "/property2/subProperty1", "value": "1"},
        {"op": "remove", "path": "/property3"},
    ])
    twin = models.get_digital_twin("myNewTwinId")
    assert twin["property2"]["subProperty1"] == "1" and "property3" not in twin
    assert "property3" not in twin["$metadata"]
    assert twin["$metadata"]["property1"]["sourceTime"] == "2022-05-31T12:00:01.000125009Z"


def test_patch_twin_basic_example_and_if_match(models):
    """PatchTwinBasicExample.json + If-Match: a stale ETag is 412 PreconditionFailed."""
    etag = put_example_twin(models)["$etag"]
    models.update_digital_twin("myNewTwinId", [{"op": "add", "path": "/property1", "value": 5}], etag=etag,
                               match_condition=MatchConditions.IfNotModified)
    with pytest.raises(HttpResponseError) as caught:
        models.update_digital_twin("myNewTwinId", [{"op": "add", "path": "/property1", "value": 6}], etag=etag,
                                   match_condition=MatchConditions.IfNotModified)
    assert caught.value.status_code == 412
    assert models.get_digital_twin("myNewTwinId")["property1"] == 5


def test_delete_twin_example(models):
    """DeleteTwin.json: 204; a second DELETE is 404 DigitalTwinNotFound."""
    put_example_twin(models)
    models.delete_digital_twin("myNewTwinId")
    with pytest.raises(ResourceNotFoundError) as caught:
        models.delete_digital_twin("myNewTwinId")
    assert caught.value.error.code == "DigitalTwinNotFound"


# ---- components ----------------------------------------------------------------------------------------------
def test_get_component_example(models):
    """GetComponent.json: the component with its own $metadata."""
    put_example_twin(models)
    component = models.get_component("myNewTwinId", "component1")
    assert component["componentProperty"] == "some value"
    assert TIMESTAMP.match(component["$metadata"]["$lastUpdateTime"])
    with pytest.raises(ResourceNotFoundError) as caught:
        models.get_component("myNewTwinId", "nope")
    assert caught.value.error.code == "ComponentNotFound"


def test_patch_component_examples(models):
    """PatchComponentBasicExample.json / PatchComponentAdvancedExample.json: add, replace of
    $metadata/property1/sourceTime, remove, replace inside an object — 204."""
    put_example_twin(models, myComponent={"$metadata": {}, "property2": "x", "property3": {"subProperty1": "old"}})
    models.update_component("myNewTwinId", "myComponent", [
        {"op": "add", "path": "/property1", "value": 1},
        {"op": "replace", "path": "/$metadata/property1/sourceTime", "value": "2022-05-31T12:00:01.000125009Z"},
        {"op": "remove", "path": "/property2"},
        {"op": "replace", "path": "/property3/subProperty1", "value": "new value"},
    ])
    component = models.get_component("myNewTwinId", "myComponent")
    assert component["property1"] == 1 and "property2" not in component
    assert component["property3"] == {"subProperty1": "new value"}
    assert component["$metadata"]["property1"]["sourceTime"] == "2022-05-31T12:00:01.000125009Z"


# ---- relationships -------------------------------------------------------------------------------------------
@pytest.fixture
def two_twins(models):
    put_example_twin(models, "mySourceTwin")
    put_example_twin(models, "myTargetTwin")
    return models


def test_create_relationship_examples(two_twins):
    """CreateRelationshipAdvancedExample.json: 200 with $relationshipId, $sourceId, $targetId, $relationshipName,
    the properties and $etag."""
    rel = two_twins.upsert_relationship("mySourceTwin", "myRelationshipId", {
        "$targetId": "myTargetTwin", "$relationshipName": "myRelationship",
        "relationshipProperty1": 1, "relationshipProperty2": "some value"})
    assert {k: v for k, v in rel.items() if k != "$etag"} == {
        "$relationshipId": "myRelationshipId", "$sourceId": "mySourceTwin", "$targetId": "myTargetTwin",
        "$relationshipName": "myRelationship", "relationshipProperty1": 1, "relationshipProperty2": "some value"}
    assert ETAG.match(rel["$etag"])
    # GetRelationshipById.json
    assert two_twins.get_relationship("mySourceTwin", "myRelationshipId") == rel


def test_list_relationships_by_name_and_incoming(two_twins):
    """GetRelationshipByRelationshipName.json (relationshipName filter) and GetIncomingRelationship.json
    ($relationshipId, $sourceId, $relationshipName, $relationshipLink)."""
    for rel_id in ("firstRelationshipId", "secondRelationshipId"):
        two_twins.upsert_relationship("mySourceTwin", rel_id,
                                      {"$targetId": "myTargetTwin", "$relationshipName": "myRelationship"})
    assert [r["$relationshipId"] for r in two_twins.list_relationships("mySourceTwin", "myRelationship")] == [
        "firstRelationshipId", "secondRelationshipId"]
    assert list(two_twins.list_relationships("mySourceTwin", "otherName")) == []
    incoming = [r.as_dict() for r in two_twins.list_incoming_relationships("myTargetTwin")]
    assert incoming[0] == {"relationship_id": "firstRelationshipId", "source_id": "mySourceTwin",
                           "relationship_name": "myRelationship",
                           "relationship_link": "/digitaltwins/mySourceTwin/relationships/firstRelationshipId"}


def test_patch_and_delete_relationship_examples(two_twins):
    """PatchRelationshipBasicExample.json / PatchRelationshipAdvancedExample.json (204) and
    DeleteRelationship.json (204, then 404 RelationshipNotFound)."""
    rel = two_twins.upsert_relationship("mySourceTwin", "r", {
        "$targetId": "myTargetTwin", "$relationshipName": "myRelationship", "relationshipProperty1": 1})
    two_twins.update_relationship("mySourceTwin", "r", [
        {"op": "replace", "path": "/relationshipProperty1", "value": 2},
        {"op": "add", "path": "/relationshipProperty2", "value": "some value"}],
        etag=rel["$etag"], match_condition=MatchConditions.IfNotModified)
    updated = two_twins.get_relationship("mySourceTwin", "r")
    assert updated["relationshipProperty1"] == 2 and updated["$etag"] != rel["$etag"]
    two_twins.delete_relationship("mySourceTwin", "r")
    with pytest.raises(ResourceNotFoundError) as caught:
        two_twins.delete_relationship("mySourceTwin", "r")
    assert caught.value.error.code == "RelationshipNotFound"


# ---- telemetry -----------------------------------------------------------------------------------------------
def test_send_telemetry_examples(models):
    """SendTelemetry.json / SendTelemetryFromComponent.json: 204 (Message-Id and Telemetry-Source-Time headers)."""
    put_example_twin(models, "myTwinId")
    models.publish_telemetry("myTwinId", {"temperature": 1}, message_id="e5ca50dd-ca31-4fae-8d84-3af5a72b10c5")
    models.publish_component_telemetry("myTwinId", "myComponent", {"temperature": 1})
    with pytest.raises(ResourceNotFoundError):
        models.publish_telemetry("missing", {"temperature": 1})


# ---- event routes --------------------------------------------------------------------------------------------
def test_event_route_examples(adt):
    """EventRoutePut.json / EventRoutePutWithFilter.json (204), EventRouteGet.json, EventRoutesList.json
    ({id, endpointName, filter}), EventRouteDelete.json (204, then 404 EventRouteNotFound)."""
    adt.upsert_event_route("eventroute-001", DigitalTwinsEventRoute(
        endpoint_name="endpoint-001", filter="type = 'Microsoft.DigitalTwins.Twin.Create'"))
    adt.upsert_event_route("eventroute-002", DigitalTwinsEventRoute(
        endpoint_name="endpoint-002",
        filter="type = 'Microsoft.DigitalTwins.Twin.Create' OR type = 'microsoft.iot.telemetry'"))
    got = adt.get_event_route("eventroute-001")
    assert (got.id, got.endpoint_name, got.filter) == (
        "eventroute-001", "endpoint-001", "type = 'Microsoft.DigitalTwins.Twin.Create'")
    assert [r.id for r in adt.list_event_routes()] == ["eventroute-001", "eventroute-002"]
    with pytest.raises(HttpResponseError) as caught:
        adt.upsert_event_route("bad", DigitalTwinsEventRoute(endpoint_name="e", filter="type = = 'x'"))
    assert caught.value.status_code == 400 and caught.value.error.code == "EventRouteFilterInvalid"
    adt.delete_event_route("eventroute-001")
    with pytest.raises(ResourceNotFoundError) as caught:
        adt.get_event_route("eventroute-001")
    assert caught.value.error.code == "EventRouteNotFound"


# ---- query ---------------------------------------------------------------------------------------------------
@pytest.fixture
def samples(adt):
    adt.create_models([SAMPLE_MODEL])
    for n in (1, 2, 3, 10):
        adt.upsert_digital_twin(f"Twin-{n:02d}", {"$metadata": {"$model": SAMPLE}, "name": f"Sample{n:02d}",
                                                  "temp": 79, "comfortIndex": 50})
    adt.upsert_digital_twin("Twin-04", {"$metadata": {"$model": SAMPLE}, "name": "Sample04", "temp": 70})
    for target in ("Twin-02", "Twin-10"):
        adt.upsert_relationship("Twin-01", f"to-{target}", {"$targetId": target, "$relationshipName": "Contains"})
    return adt


def test_query_first_and_next_page(samples):
    """QueryFirstPage.json / QueryNextPage.json: the twins with temp = 79, paged with continuationToken (the SDK
    follows it: a page size of 2 needs two requests for three… four rows)."""
    rows = list(samples.query_twins("SELECT * FROM DIGITALTWINS WHERE temp = 79", headers={"max-items-per-page": "2"}))
    assert [r["$dtId"] for r in rows] == ["Twin-01", "Twin-02", "Twin-03", "Twin-10"]
    assert set(rows[0]) == {"$dtId", "$etag", "$metadata", "name", "temp", "comfortIndex"}


def test_query_join_example(samples):
    """QueryJoin.json: SELECT Widget, Gadget … JOIN Gadget RELATED Widget.Contains WHERE Widget.$dtId = 'Twin-01'
    returns one row per related twin, each row keyed by the collection names."""
    rows = list(samples.query_twins(
        "SELECT Widget, Gadget FROM DIGITALTWINS Widget JOIN Gadget RELATED Widget.Contains "
        "WHERE Widget.$dtId = 'Twin-01'"))
    assert [(r["Widget"]["$dtId"], r["Gadget"]["$dtId"]) for r in rows] == [
        ("Twin-01", "Twin-02"), ("Twin-01", "Twin-10")]
