"""patch_twin's two paths: the cheap one for top-level primitive properties (``_patch_properties``) must answer every
patch exactly as the general one (``_patch_any``) does — the same twin, metadata and ETag, or the same error (status,
code, message, path) — and leave the stored twin alone when it refuses."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.adapters.twins.embedded import AdtError, TwinGraph
from shared.adapters.twins.embedded import graph as graph_module

KINDS = "dtmi:ex:Kinds;1"
BUILDING = "dtmi:ex:Building;1"


def interface(model_id: str, *contents: tuple[str, str, Any]) -> dict[str, Any]:
    return {"@id": model_id, "@type": "Interface", "@context": "dtmi:dtdl:context;3",
            "contents": [{"@type": kind, "name": name, "schema": schema} for kind, name, schema in contents]}


ENUM = {"@type": "Enum", "valueSchema": "string",
        "enumValues": [{"name": "on", "enumValue": "on"}, {"name": "off", "enumValue": "off"}]}
# One property of each kind of check (and two containers, which the cheap path leaves to the general one).
MODELS = [
    interface(KINDS, ("Property", "d", "double"), ("Property", "i", "integer"), ("Property", "s", "string"),
              ("Property", "b", "boolean"), ("Property", "t", "dateTime"), ("Property", "e", ENUM),
              ("Property", "o", {"@type": "Object", "fields": [{"name": "a", "schema": "string"}]}),
              ("Property", "l", {"@type": "Array", "elementSchema": "integer"})),
    interface(BUILDING, ("Property", "d", "double"), ("Component", "part", KINDS)),
]
SOURCE_TIME = "2024-01-01T00:00:00Z"


def graph_with(twin: dict[str, Any], model: str = KINDS) -> TwinGraph:
    graph = TwinGraph()
    graph.add_models(MODELS)
    graph.put_twin("x", {**twin, "$metadata": {"$model": model, **({"d": {"sourceTime": SOURCE_TIME}}
                                                                  if "d" in twin else {})}})
    return graph


def outcome(twin: dict[str, Any], patch: Any, *, general: bool, model: str = KINDS) -> Any:
    """The twin after the patch, or the error; clock and ETags fixed so the two paths can be compared."""
    counter = itertools.count()
    clock = (f"2030-01-01T00:00:{second:02d}.0000000Z" for second in itertools.count())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(graph_module, "now_text", lambda: next(clock))
        mp.setattr(graph_module, "new_etag", lambda: f'W/"{next(counter)}"')
        graph = graph_with(twin, model)
        if general:
            mp.setattr(TwinGraph, "_patch_properties", lambda self, current, patch, now: None)
        before = graph.get_twin("x")
        try:
            etag = graph.patch_twin("x", patch)
        except AdtError as error:
            assert graph.get_twin("x") == before  # a refused patch changes nothing
            return ("refused", error.status, error.code, error.message, error.path)
        twin = graph.get_twin("x")
        assert twin["$etag"] == etag
        return twin


# Edge values: beyond 64 bits (not JSON), over the 4 KB string limit, and 4 KB (nine of them pass 32 KB).
VALUES = (st.floats() | st.integers(min_value=-(2**70), max_value=2**70) | st.booleans() | st.none()
          | st.sampled_from(["on", "off", SOURCE_TIME, "noon", "", 2**64, "x" * 5000, "y" * 4000])
          | st.text(max_size=4) | st.lists(st.integers(), max_size=2)
          | st.fixed_dictionaries({"a": st.text(max_size=2)}))
PROPERTIES = ["/d", "/i", "/s", "/b", "/t", "/e", "/o", "/l"]
# Mostly the cheap path's shape (where a wrong answer would hide), and any op at all.
CHEAP_OPS = st.fixed_dictionaries({"op": st.sampled_from(["add", "replace", "remove", 1]),
                                   "path": st.sampled_from(PROPERTIES), "value": VALUES})
ANY_OPS = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "test", "move", 1])},
    optional={"path": st.sampled_from([*PROPERTIES, "/nope", "/$dtId", "/part", "/part/d", "/o/a", "/l/-", "d", "/",
                                       "", "/$metadata/d/sourceTime", "/$metadata/$model", "/d~0"]) | st.integers(),
              "value": VALUES})
OPS = CHEAP_OPS | ANY_OPS
TWINS = st.fixed_dictionaries({}, optional={"d": st.just(1.5), "s": st.just("x"), "e": st.just("on"),
                                            "o": st.just({"a": "y"}), "l": st.just([1])})


@settings(max_examples=400, deadline=None)
@given(twin=TWINS, patch=st.lists(OPS | st.sampled_from([None, [], "add"]), max_size=9) | st.just({"op": "add"}))
@example(twin={}, patch=[{"op": "replace", "path": "/d", "value": 1.0}])  # absent: JsonPatchInvalid
@example(twin={}, patch=[{"op": "remove", "path": "/d"}])
@example(twin={}, patch=[{"op": "add", "path": "/d", "value": 2**64}])  # not JSON: ValidationFailed
@example(twin={}, patch=[{"op": "add", "path": "/s", "value": "y" * 4000}] * 9)  # 413
@example(twin={}, patch=[{"op": "add", "path": "/s", "value": "\ud800" * 1100}])  # not UTF-8: not JSON
def test_the_cheap_path_answers_as_the_general_path(twin: dict[str, Any], patch: Any) -> None:
    fast = outcome(twin, patch, general=False)
    assert fast == outcome(twin, patch, general=True)


@settings(max_examples=100, deadline=None)
@given(patch=st.lists(OPS, max_size=4))
def test_twins_with_components_answer_as_the_general_path(patch: Any) -> None:
    twin = {"d": 1.5, "part": {"$metadata": {}, "s": "x"}}
    fast = outcome(twin, patch, general=False, model=BUILDING)
    assert fast == outcome(twin, patch, general=True, model=BUILDING)


def spy_on_the_cheap_path(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the cheap path answered, per patch_twin call (False: it handed over to the general path)."""
    answered: list[bool] = []
    cheap = TwinGraph._patch_properties

    def spy(self: TwinGraph, current: Any, patch: Any, now: str) -> Any:
        result = cheap(self, current, patch, now)
        answered.append(result is not None)
        return result

    monkeypatch.setattr(TwinGraph, "_patch_properties", spy)
    return answered


def test_a_twin_with_components_takes_the_cheap_path_for_its_own_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    """The property test above compares the two paths on such twins: this keeps it from comparing the general
    path with itself."""
    answered = spy_on_the_cheap_path(monkeypatch)
    graph = graph_with({"d": 1.5, "part": {"$metadata": {}, "s": "x"}}, BUILDING)
    graph.patch_twin("x", [{"op": "replace", "path": "/d", "value": 2.5}])
    graph.patch_twin("x", [{"op": "replace", "path": "/part/s", "value": "y"}])  # inside the component: general
    assert answered == [True, False]
    twin = graph.get_twin("x")
    assert (twin["d"], twin["part"]["s"]) == (2.5, "y")


def test_the_app_s_patches_take_the_cheap_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shape the twin writer sends (top-level add/replace/remove of primitives) must not fall back: the
    property tests above would pass with a cheap path that never answers."""
    graph = graph_with({"d": 1.5, "s": "x", "e": "on"})
    answered = spy_on_the_cheap_path(monkeypatch)
    graph.patch_twin("x", [{"op": "replace", "path": "/d", "value": 2.5}, {"op": "add", "path": "/i", "value": 3},
                           {"op": "replace", "path": "/s", "value": "y"}, {"op": "remove", "path": "/e"},
                           {"op": "add", "path": "/t", "value": SOURCE_TIME}, {"op": "add", "path": "/b",
                                                                                 "value": None}])
    assert answered == [True]
    twin = graph.get_twin("x")
    assert (twin["d"], twin["i"], twin["s"], twin["t"], twin["b"]) == (2.5, 3, "y", SOURCE_TIME, None)
    assert "e" not in twin and "e" not in twin["$metadata"]
    assert twin["$metadata"]["d"]["sourceTime"] == SOURCE_TIME  # a written property keeps its sourceTime
    assert twin["$metadata"]["i"]["lastUpdateTime"] == twin["$metadata"]["$lastUpdateTime"]
