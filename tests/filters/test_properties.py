"""Property-based invariants (hypothesis) for all three filter languages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.filters.adt_route import compile_route_filter
from shared.filters.event_grid import SubscriptionFilter
from shared.filters.iothub_query import compile_routing_query

PAIRS = [
    ("NumberIn", "NumberNotIn"),
    ("NumberInRange", "NumberNotInRange"),
    ("StringIn", "StringNotIn"),
    ("StringContains", "StringNotContains"),
    ("StringBeginsWith", "StringNotBeginsWith"),
    ("StringEndsWith", "StringNotEndsWith"),
]

texts = st.text(alphabet="aAbBé5 .-", max_size=6)
numbers = st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=True, allow_infinity=True),
                    st.decimals(allow_nan=False, places=3, min_value=-1000, max_value=1000))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(texts, scalars, max_size=2))


def _values_for(op: str, draw: Any) -> dict[str, Any]:
    if op in ("NumberInRange", "NumberNotInRange"):
        pairs = draw(st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 50)), min_size=1, max_size=3))
        return {"values": [[lo, lo + width] for lo, width in pairs]}
    if op.startswith("Number") and op.endswith("In"):
        return {"values": draw(st.lists(st.one_of(st.integers(-50, 50), st.floats(-50, 50)), min_size=1, max_size=4))}
    if op.startswith("Number"):
        return {"value": draw(st.one_of(st.integers(-50, 50), st.floats(-50, 50)))}
    if op == "BoolEquals":
        return {"value": draw(st.booleans())}
    if op in ("IsNullOrUndefined", "IsNotNull"):
        return {}
    return {"values": draw(st.lists(texts, min_size=1, max_size=3))}


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(PAIRS), st.booleans(), values)
def test_operator_and_not_counterpart_never_both_match(data: st.DataObject, pair: tuple[str, str], arrays: bool,
                                                       value: Any) -> None:
    positive = pair[0]
    spec = _values_for(positive, data.draw)
    event = {"id": "1", "eventType": "t", "subject": "s", "data": {"k": value}}
    results = []
    for op in pair:
        f = SubscriptionFilter.from_dict({"enableAdvancedFilteringOnArrays": arrays,
                                          "advancedFilters": [{"operatorType": op, "key": "data.k", **spec}]})
        results.append(f.matches(event))
    assert not all(results)
    # for a present value of the operator's own type, exactly one of the pair matches
    own_type = (type(value) is str) if positive.startswith("String") else (
        type(value) in (int, Decimal) or (type(value) is float and value == value))
    if own_type:
        assert any(results)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False),
       st.sampled_from(["NumberGreaterThan", "NumberGreaterThanOrEquals", "NumberLessThan", "NumberLessThanOrEquals"]))
@example(6.270849766138537e16, 6.270849766138537e16, "NumberGreaterThanOrEquals")  # integral, not float-exact as int
@example(0.1, 0.1, "NumberGreaterThanOrEquals")
def test_numbers_compare_as_decimals_of_their_json_text(v: float, t: float, op: str) -> None:
    f = SubscriptionFilter.from_dict({"advancedFilters": [{"operatorType": op, "key": "data.k", "value": t}]})
    dv, dt = Decimal(repr(v)), Decimal(repr(t))
    expected = {"NumberGreaterThan": dv > dt, "NumberGreaterThanOrEquals": dv >= dt,
                "NumberLessThan": dv < dt, "NumberLessThanOrEquals": dv <= dt}[op]
    assert f.matches({"eventType": "x", "data": {"k": v}}) is expected


OPS = ["NumberGreaterThan", "NumberLessThanOrEquals", "NumberIn", "NumberNotIn", "NumberInRange", "NumberNotInRange",
       "BoolEquals", "StringIn", "StringNotIn", "StringContains", "StringNotContains", "StringBeginsWith",
       "StringNotEndsWith", "IsNullOrUndefined", "IsNotNull"]
KEYS = ["data.a", "data.b.c", "data.b.d.e", "subject", "Subject", "type", "EventType", "id", "ext"]


@st.composite
def filters(draw: Any) -> dict:
    adv = []
    for _ in range(draw(st.integers(0, 5))):
        op = draw(st.sampled_from(OPS))
        adv.append({"operatorType": op, "key": draw(st.sampled_from(KEYS)), **_values_for(op, draw)})
    out: dict[str, Any] = {"advancedFilters": adv, "enableAdvancedFilteringOnArrays": draw(st.booleans()),
                           "isSubjectCaseSensitive": draw(st.booleans())}
    if draw(st.booleans()):
        out["includedEventTypes"] = draw(st.lists(st.sampled_from(["T", "t", "X"]), min_size=1, max_size=2))
    if draw(st.booleans()):
        out["subjectBeginsWith"] = draw(texts)
    if draw(st.booleans()):
        out["subjectEndsWith"] = draw(texts)
    return out


@st.composite
def events(draw: Any) -> dict:
    data = {"a": draw(values), "b": draw(st.one_of(values, st.fixed_dictionaries(
        {"c": values, "d": st.one_of(values, st.fixed_dictionaries({"e": values}))})))}
    if draw(st.booleans()):
        return {"specversion": "1.0", "id": draw(texts), "type": draw(st.sampled_from(["T", "t", "X"])),
                "source": "/s", "subject": draw(texts), "ext": draw(values), "data": data}
    return {"id": draw(texts), "eventType": draw(st.sampled_from(["T", "t", "X"])), "subject": draw(texts),
            "data": draw(st.one_of(st.just(data), values))}


@settings(max_examples=400, deadline=None)
@given(filters(), st.lists(events(), min_size=1, max_size=5))
def test_a_filter_rebuilt_from_its_arm_export_decides_the_same(flt: dict, evs: list[dict]) -> None:
    f = SubscriptionFilter.from_dict(flt)
    again = SubscriptionFilter.from_dict(f.to_arm())
    for ev in evs:
        assert f.matches(ev) == again.matches(ev)
        assert f.explain(ev) == again.explain(ev)


# ---- routing queries: parse -> to_text -> parse behaves the same -------------------------------------------------

paths = st.sampled_from(["$body.t", "$body.s", "$body.arr[0]", "$body.o.x", "level", "Level", "$connectionDeviceId",
                         "$twin.tags.floor", "$contentType"])
literals = st.one_of(st.integers(-5, 5), st.floats(-5, 5).map(lambda x: round(x, 2)), st.booleans(),
                     st.just(None), st.sampled_from(["'a'", "'d1'", "'it\\'s'", '"7"']))


def _lit(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "true" if x else "false"
    return str(x)


values_q = st.one_of(paths, literals.map(_lit))
atoms = st.one_of(
    st.tuples(values_q, st.sampled_from(["=", "!=", "<>", "<", ">", "<=", ">="]), values_q).map(" ".join),
    st.tuples(st.sampled_from(["IS_DEFINED", "IS_STRING", "IS_NUMBER", "LOWER", "AS_NUMBER", "ABS"]), values_q).map(
        lambda t: f"{t[0]}({t[1]})"),
    st.tuples(st.sampled_from(["STARTSWITH", "CONTAINS", "CONCAT"]), values_q, values_q).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    st.tuples(values_q, st.sampled_from(["+", "-", "*", "/", "%"]), values_q, values_q).map(
        lambda t: f"{t[0]} {t[1]} {t[2]} = {t[3]}"),
)
queries = st.recursive(atoms, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(["AND", "OR", "and", "or"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    inner.map(lambda q: f"({q})"),
    inner.map(lambda q: f"NOT {q}"),
), max_leaves=6)
telemetries = st.fixed_dictionaries({
    "body": st.fixed_dictionaries({"t": st.integers(-3, 3), "s": st.sampled_from(["a", "A", "it's"]),
                                   "arr": st.lists(st.integers(-2, 2), max_size=2),
                                   "o": st.fixed_dictionaries({"x": st.one_of(st.none(), st.integers(0, 2))})}),
    "properties": st.dictionaries(st.sampled_from(["level", "LEVEL"]), st.sampled_from(["7", "a"]), max_size=1),
    "systemProperties": st.fixed_dictionaries({
        "iothub-content-type": st.sampled_from(["application/json", "text/plain"]),
        "iothub-content-encoding": st.just("utf-8"),
        "iothub-connection-device-id": st.sampled_from(["d1", "d2"])}),
})


@settings(max_examples=300, deadline=None)
@given(queries, st.lists(telemetries, min_size=1, max_size=4), st.one_of(st.none(), st.just({"tags": {"floor": 1}})))
def test_routing_query_round_trip(text: str, tels: list[dict], twin: dict | None) -> None:
    q = compile_routing_query(text)
    canonical = q.to_text()
    again = compile_routing_query(canonical)
    assert again.to_text() == canonical
    for t in tels:
        assert q.matches(t, twin) == again.matches(t, twin)


route_atoms = st.one_of(
    st.tuples(st.sampled_from(["type", "subject", "$body.t", "$body.$metadata.$model", "dataschema"]),
              st.sampled_from(["=", "!=", "<", ">=", ">"]),
              st.sampled_from(["'a'", "'A'", "1", "-2.5", "true", "null", "'it\\'s'"])).map(" ".join),
    st.tuples(st.sampled_from(["STARTS_WITH", "ENDS_WITH", "CONTAINS"]), st.sampled_from(["type", "subject"]),
              st.sampled_from(["'a'", "''", "'Tw'"])).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    st.sampled_from(["true", "false"]),
)
route_filters = st.recursive(route_atoms, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(["AND", "OR", "and"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    inner.map(lambda q: f"({q})"),
), max_leaves=6)
notifications = st.fixed_dictionaries({
    "type": st.sampled_from(["a", "A", "Twin", "it's"]), "subject": st.sampled_from(["a", "Tw", ""]),
    "data": st.fixed_dictionaries({"t": st.one_of(st.integers(-3, 3), st.text("a", max_size=1), st.none()),
                                   "$metadata": st.fixed_dictionaries({"$model": st.sampled_from(["a", "b"])})}),
})


@settings(max_examples=300, deadline=None)
@given(route_filters, st.lists(notifications, min_size=1, max_size=4))
def test_route_filter_round_trip(text: str, notes: list[dict]) -> None:
    f = compile_route_filter(text)
    again = compile_route_filter(f.to_text())
    assert again.to_text() == f.to_text()
    for n in notes:
        assert f.matches(n) == again.matches(n)
