"""Pinning rows by a top-level ``$dtId`` term (query._pinned_ids) is an optimisation: it must never change a
result. Random graphs and conditions, each query run with and without it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.twins.embedded import AdtError, TwinGraph, query

MODEL = {"@id": "dtmi:ex:N;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
         "contents": [{"@type": "Property", "name": "v", "schema": "integer"},
                      {"@type": "Relationship", "name": "contains"}]}
IDS = ["a", "b", "c", "d", "e"]

ID = st.sampled_from([*IDS, "zz"])
ALIAS = st.sampled_from(["A", "B", "C"])
TERM = st.one_of(
    st.builds(lambda a, i: f"{a}.$dtId = '{i}'", ALIAS, ID),
    st.builds(lambda i, a: f"'{i}' = {a}.$dtId", ID, ALIAS),
    st.builds(lambda a, ids: f"{a}.$dtId IN [{', '.join(repr(i) for i in ids)}]", ALIAS, st.lists(ID, max_size=3)),
    st.builds(lambda a, ids: f"{a}.$dtId NIN [{', '.join(repr(i) for i in ids)}]", ALIAS, st.lists(ID, max_size=2)),
    st.builds(lambda a, n: f"{a}.v > {n}", ALIAS, st.integers(0, 4)),
)
CONDITION = st.recursive(TERM, lambda inner: st.one_of(
    st.builds(lambda x, y: f"({x} AND {y})", inner, inner),
    st.builds(lambda x, y: f"({x} OR {y})", inner, inner),
    st.builds(lambda x: f"NOT ({x})", inner)), max_leaves=4)


@settings(max_examples=200, deadline=None)
@given(edges=st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(IDS)), max_size=10),
       joins=st.integers(0, 2), terms=st.lists(CONDITION, min_size=1, max_size=3),
       combine=st.sampled_from([" AND ", " OR "]))
def test_pinning_never_changes_a_result(edges, joins, terms, combine):
    graph = TwinGraph()
    graph.add_models([MODEL])
    for n, twin_id in enumerate(IDS):
        graph.put_twin(twin_id, {"$metadata": {"$model": MODEL["@id"]}, "v": n})
    for n, (source, target) in enumerate(edges):
        if source != target:
            graph.put_relationship(source, f"r{n}", {"$targetId": target, "$relationshipName": "contains"})
    text = ("SELECT A" + ", B" * (joins >= 1) + ", C" * (joins >= 2) + " FROM DIGITALTWINS A"
            + " JOIN B RELATED A.contains" * (joins >= 1) + " JOIN C RELATED B.contains" * (joins >= 2)
            + " WHERE " + combine.join(terms))
    if joins < 2:
        text = text.replace("C.", "A.")
    if joins < 1:
        text = text.replace("B.", "A.")
    def outcome():
        try:
            return graph.query(text)
        except AdtError as error:  # a JOIN whose WHERE names no twin: the same refusal either way
            return error.code

    pinned = outcome()
    original = query._pinned_ids
    try:
        query._pinned_ids = lambda *args: {}
        unpinned = outcome()
    finally:
        query._pinned_ids = original
    assert pinned == unpinned


def test_a_pin_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The optimisation is really on: a pinned query looks only at the pinned twin."""
    graph = TwinGraph()
    graph.add_models([MODEL])
    for twin_id in IDS:
        graph.put_twin(twin_id, {"$metadata": {"$model": MODEL["@id"]}})
    seen: list[str] = []
    real = query._Evaluator.truth

    def spy(self, node, row):
        seen.append(row[next(iter(row))]["$dtId"])
        return real(self, node, row)

    monkeypatch.setattr(query._Evaluator, "truth", spy)
    assert [r["$dtId"] for r in graph.query("SELECT * FROM DIGITALTWINS T WHERE T.$dtId = 'c'")] == ["c"]
    assert set(seen) == {"c"}
