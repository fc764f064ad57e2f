"""The DTDL registry and value validator (shared/adapters/twins/embedded/dtdl.py).

Sources: DTDL v2/v3 language specs (github.com/Azure/opendigitaltwins-dtdl DTDL/v2/DTDL.v2.md, DTDL/v3/DTDL.v3.md),
Learn concepts-models ("Azure Digital Twins supports DTDL v2 and v3"), reference-service-limits (4 KB strings,
1 KB property names). The divergences of the old catalog (shared/ingest/dtdl.py, retired) each have a test here marked
"divergence" in its docstring.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.twins.embedded import AdtError, TwinGraph
from shared.adapters.twins.embedded.dtdl import Registry

V2, V3 = "dtmi:dtdl:context;2", "dtmi:dtdl:context;3"


def interface(model_id, *contents, context=V3, **extra):
    return {"@id": model_id, "@type": "Interface", "@context": context, "contents": list(contents), **extra}


def prop(name, schema, **extra):
    return {"@type": "Property", "name": name, "schema": schema, **extra}


def graph_with(*models):
    graph = TwinGraph()
    graph.add_models(list(models))
    return graph


def refused(call, code="ValidationFailed"):
    with pytest.raises(AdtError) as caught:
        call()
    assert caught.value.code == code, caught.value.message
    return caught.value


def twin(graph, model, twin_id="t", **props):
    return graph.put_twin(twin_id, {"$metadata": {"$model": model}, **props})


# ---- upload-time rules -------------------------------------------------------------------------------------------
CHAIN = [
    interface("dtmi:ex:Grand;1", prop("grand", "string")),
    interface("dtmi:ex:Parent;1", prop("parent", "string"), extends="dtmi:ex:Grand;1"),
    interface("dtmi:ex:Child;1", prop("child", "string"), extends=["dtmi:ex:Parent;1"]),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_an_extends_chain_uploads_in_any_order_and_keeps_grandparent_properties(order):
    """Divergence: grandparent properties were lost when a chain was loaded together, and load order mattered."""
    graph = graph_with(*(CHAIN[i] for i in order))
    created = twin(graph, "dtmi:ex:Child;1", grand="g", parent="p", child="c")
    assert (created["grand"], created["parent"], created["child"]) == ("g", "p", "c")


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(3)), st.lists(st.booleans(), min_size=3, max_size=3))
def test_a_chain_split_over_several_uploads_resolves_the_same(order, split):
    """Any order of uploads works as long as each upload's references are uploaded or in the same request."""
    graph = TwinGraph()
    pending = [CHAIN[i] for i in order]
    batch: list = []
    for document, cut in zip(pending, split, strict=True):
        batch.append(document)
        if cut:
            try:
                graph.add_models(batch)
                batch = []
            except AdtError as error:
                assert error.code == "DTDLParserError"  # a reference to a model still to come
    if batch:
        graph.add_models(batch)
    remaining = [d for d in CHAIN if not graph.registry.knows(d["@id"])]
    if remaining:
        graph.add_models(remaining)
    assert set(graph.registry.resolved("dtmi:ex:Child;1").properties) == {"grand", "parent", "child"}


def test_inline_extends_objects_are_parsed():
    """Divergence: an inline interface in extends crashed the old catalog."""
    graph = graph_with(interface("dtmi:ex:Room;1", prop("temp", "double"),
                                 extends=[interface("dtmi:ex:Base;1", prop("name", "string"))]))
    assert twin(graph, "dtmi:ex:Room;1", name="r", temp=1.5)["name"] == "r"


@pytest.mark.parametrize(("documents", "code"), [
    ([interface("dtmi:ex:A;1", extends="dtmi:ex:Missing;1")], "DTDLParserError"),
    ([interface("dtmi:ex:A;1", extends="dtmi:ex:B;1"), interface("dtmi:ex:B;1", extends="dtmi:ex:A;1")],
     "DTDLParserError"),
    ([interface("dtmi:ex:A;1", prop("x", "string"), prop("x", "double"))], "DTDLParserError"),
    ([interface("dtmi:ex:B;1", prop("x", "string")),
      interface("dtmi:ex:A;1", prop("x", "double"), extends="dtmi:ex:B;1")], "DTDLParserError"),
    ([interface("not-a-dtmi")], "DTDLParserError"),
    ([interface("dtmi:ex:A;1", prop("1bad", "string"))], "DTDLParserError"),
    ([interface("dtmi:ex:A;1", prop("x", "nosuchtype"))], "DTDLParserError"),
    ([interface("dtmi:ex:A;1", context="dtmi:dtdl:context;9")], "ModelVersionNotSupported"),
    ([{"@id": "dtmi:ex:A;1", "@type": "Interface"}], "DTDLParserError"),  # no @context
    ([interface("dtmi:ex:A;1", extends=["dtmi:ex:B;1", "dtmi:ex:C;1", "dtmi:ex:D;1"], context=V2)],
     "DTDLParserError"),  # v2: at most two extends
    ([interface("dtmi:ex:A;1", *[prop(f"p{i}", "string") for i in range(301)], context=V2)], "DTDLParserError"),
    ([interface("dtmi:ex:A;1", prop("n" * 65, "string"), context=V2)], "DTDLParserError"),  # v2 names ≤ 64
    ([interface("dtmi:ex:A;1", {"@type": "Component", "name": "c", "schema": "dtmi:ex:B;1"}),
      interface("dtmi:ex:B;1", {"@type": "Component", "name": "d", "schema": "dtmi:ex:C;1"}),
      interface("dtmi:ex:C;1")], "DTDLParserError"),  # a component's interface may not have components
])
def test_invalid_models_are_refused_whole(documents, code):
    graph = TwinGraph()
    refused(lambda: graph.add_models(documents), code)
    assert graph.list_models() == []  # all or nothing


def test_v3_names_may_be_longer_and_arrays_are_property_schemas():
    """Divergence: DTDL v3 Array properties were refused; ADT supports them (Learn concepts-models, DTDL v3)."""
    graph = graph_with(interface("dtmi:ex:A;1", prop("n" * 100, "string"),
                                 prop("readings", {"@type": "Array", "elementSchema": "double"})))
    assert twin(graph, "dtmi:ex:A;1", readings=[1.0, 2])["readings"] == [1.0, 2]
    refused(lambda: twin(graph, "dtmi:ex:A;1", "u", readings=[1.0, "x"]))
    refused(lambda: twin(graph, "dtmi:ex:A;1", "v", readings="1.0"))


def test_an_existing_model_cannot_be_uploaded_again():
    graph = graph_with(interface("dtmi:ex:A;1"))
    assert refused(lambda: graph.add_models([interface("dtmi:ex:A;1")]), "ModelAlreadyExists").status == 409


def test_reusable_schemas_by_id():
    enum = {"@id": "dtmi:ex:Mode;1", "@type": "Enum", "valueSchema": "string",
            "enumValues": [{"name": "on", "enumValue": "on"}, {"name": "off", "enumValue": "off"}]}
    graph = graph_with(interface("dtmi:ex:A;1", prop("mode", "dtmi:ex:Mode;1"), schemas=[enum]))
    assert twin(graph, "dtmi:ex:A;1", mode="on")["mode"] == "on"
    refused(lambda: twin(graph, "dtmi:ex:A;1", "u", mode="auto"))


# ---- values --------------------------------------------------------------------------------------------------
COMPLEX = interface(
    "dtmi:ex:Complex;1",
    prop("pos", {"@type": "Object", "fields": [{"name": "x", "schema": "double"},
                                               {"name": "label", "schema": "string"}]}),
    prop("readings", {"@type": "Map", "mapKey": {"name": "sensor", "schema": "string"},
                      "mapValue": {"name": "value", "schema": "integer"}}),
    prop("level", {"@type": "Enum", "valueSchema": "integer",
                   "enumValues": [{"name": "low", "enumValue": 1}, {"name": "high", "enumValue": 2}]}),
    prop("when", "dateTime"), prop("day", "date"), prop("at", "time"), prop("period", "duration"),
    prop("count", "integer"), prop("big", "long"), prop("ok", "boolean"), prop("text", "string"),
)


@pytest.mark.parametrize(("name", "value"), [
    ("pos", {"x": 1.5, "label": "a"}), ("pos", {}), ("readings", {"s1": 3, "s2": -1}), ("level", 2),
    ("when", "2022-05-31T12:00:01.000125009Z"), ("when", "2024-02-29T23:59:60+01:00"), ("day", "2024-02-29"),
    ("at", "12:30:00"), ("at", "12:30:00.5Z"), ("period", "P1DT2H"), ("period", "PT0.5S"), ("period", "P3W"),
    ("count", 2**31 - 1), ("big", -(2**63)), ("ok", False), ("text", "é" * 1024), ("text", None),
])
def test_valid_values(name, value):
    assert twin(graph_with(COMPLEX), "dtmi:ex:Complex;1", **{name: value})[name] == value


@pytest.mark.parametrize(("name", "value", "path"), [
    ("pos", {"x": 1.5, "z": 1}, "/pos/z"),  # Object: undeclared field (divergence: unchecked)
    ("pos", {"x": "left"}, "/pos/x"),  # Object field type (divergence: unchecked)
    ("readings", {"s1": "3"}, "/readings/s1"),  # Map value (divergence: unchecked)
    ("level", 3, "/level"),  # Enum membership (divergence: any int/str accepted)
    ("level", "1", "/level"),
    ("when", "2022-05-31 12:00:01Z", "/when"),  # dateTime format (divergence: any string)
    ("when", "2022-13-01T00:00:00Z", "/when"),
    ("day", "2023-02-29", "/day"),  # date format (divergence)
    ("at", "25:00:00", "/at"),  # time format (divergence)
    ("period", "1 day", "/period"),  # duration format (divergence)
    ("period", "P", "/period"),
    ("count", 2**31, "/count"), ("count", True, "/count"), ("count", 1.0, "/count"),
    ("ok", 1, "/ok"), ("text", 5, "/text"),
    ("pos", {"label": "x" * 4097}, "/pos/label"),  # a nested string over 4 KB (divergence: top level only)
    ("readings", {"k" * 1025: 1}, "/readings/" + "k" * 1025),  # a name over 1 KB (divergence: unchecked)
])
def test_invalid_values_are_refused_with_their_path(name, value, path):
    error = refused(lambda: twin(graph_with(COMPLEX), "dtmi:ex:Complex;1", **{name: value}))
    assert error.path == path and error.status == 400


def test_strings_are_measured_in_utf8_bytes():
    graph = graph_with(COMPLEX)
    twin(graph, "dtmi:ex:Complex;1", text="é" * 2048)  # 4,096 bytes
    refused(lambda: twin(graph, "dtmi:ex:Complex;1", "u", text="é" * 2049))


def test_a_registry_answers_is_of_model_through_the_chain():
    registry = Registry()
    _order, interfaces = registry.parse(CHAIN)
    registry.register(interfaces)
    assert registry.is_of_model("dtmi:ex:Child;1", "dtmi:ex:Grand;1")
    assert not registry.is_of_model("dtmi:ex:Grand;1", "dtmi:ex:Child;1")
    assert registry.dependencies("dtmi:ex:Child;1") == ["dtmi:ex:Parent;1", "dtmi:ex:Grand;1"]
    assert registry.referenced_by("dtmi:ex:Parent;1") == ["dtmi:ex:Child;1"]
