"""Own cases for shared.filters.event_grid: operators, decimals, types, null/missing, arrays, keys, schemas,
limits, export."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.filters.event_grid import OPERATORS, FilterError, SubscriptionFilter

from .test_subscription_vectors import adv, both, eg


def ce(data: Any = None, **attrs: Any) -> dict:
    return {"specversion": "1.0", "id": "c1", "source": "/hub", "type": "Microsoft.Devices.DeviceTelemetry",
            "subject": "devices/d1", "data": data, **attrs}


def test_all_19_operators_known() -> None:
    assert len(OPERATORS) == 19


# ---- numbers -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "value", "t", "expected"), [
    ("NumberLessThan", 20, 19.999, True),
    ("NumberLessThan", 20, 20, False),
    ("NumberLessThanOrEquals", 20, 20.0, True),
    ("NumberLessThanOrEquals", 20, 20.0000001, False),
    ("NumberGreaterThan", 0.1, 0.1, False),          # decimal: 0.1 is not > 0.1
    ("NumberGreaterThan", 0.1, 0.10000000000000002, True),
    ("NumberGreaterThanOrEquals", 0.3, 0.3, True),   # float 0.3 vs decimal 0.3 compared as decimals
    ("NumberLessThan", 0.3, 0.1 + 0.2, False),       # 0.30000000000000004 is its own decimal
    ("NumberGreaterThan", -1, -0.5, True),
    ("NumberGreaterThan", 5, True, False),           # booleans are not numbers
    ("NumberGreaterThan", 5, None, False),
    ("NumberGreaterThan", 5, {"x": 9}, False),
    ("NumberGreaterThan", 5, float("nan"), False),
    ("NumberLessThan", 5, float("-inf"), True),
    ("NumberGreaterThan", 5, Decimal("5.0000000000000000000001"), True),
    ("NumberGreaterThan", 10**30, 10**30 + 1, True),  # big ints stay exact
])
def test_number_comparisons(op: str, value: Any, t: Any, expected: bool) -> None:
    assert both(SubscriptionFilter.from_dict(adv(op, value=value)), eg({"t": t})) is expected


def test_number_in_decimal_semantics() -> None:
    f = SubscriptionFilter.from_dict(adv("NumberIn", values=[0.1, 2, 3.5]))
    assert both(f, eg({"t": 0.1}))
    assert both(f, eg({"t": 2.0}))
    assert both(f, eg({"t": Decimal("3.50")}))
    assert not both(f, eg({"t": 0.1 + 0.2 - 0.2}))  # 0.10000000000000003
    assert not both(f, eg({"t": True}))
    assert not both(f, eg({"t": "2"}))


def test_number_not_in_type_mismatch_and_null() -> None:
    f = SubscriptionFilter.from_dict(adv("NumberNotIn", values=[1]))
    assert both(f, eg({"t": 2}))
    assert not both(f, eg({"t": 1.0}))
    assert not both(f, eg({"t": "2"}))           # present, wrong type: not matched
    assert not both(f, eg({"t": float("nan")}))  # NaN is not a number
    assert both(f, eg({"t": None}))              # null counts as missing: NotIn matches
    assert both(f, eg(None))                     # no data at all


def test_range_boundaries_and_not_in_range_missing() -> None:
    f = SubscriptionFilter.from_dict(adv("NumberInRange", values=[[-1.5, 1.5]]))
    assert both(f, eg({"t": -1.5})) and both(f, eg({"t": 1.5})) and both(f, eg({"t": 0}))
    assert not both(f, eg({"t": 1.5000001}))
    g = SubscriptionFilter.from_dict(adv("NumberNotInRange", values=[[0, 1]]))
    assert not both(g, eg({}))                   # choice: missing key does not match
    assert both(g, eg({"t": 2}))
    assert not both(g, eg({"t": "2"}))


def test_non_float_exact_thresholds_use_decimal_path() -> None:
    f = SubscriptionFilter.from_dict(adv("NumberInRange", values=[[0.1, 0.3]]))
    assert both(f, eg({"t": 0.1})) and both(f, eg({"t": 0.3}))
    assert not both(f, eg({"t": 0.30000000000000004}))


# ---- strings -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "values", "t", "expected"), [
    ("StringIn", ["abc"], "ABC", True),
    ("StringIn", ["abc"], "abcd", False),
    ("StringNotIn", ["abc"], "AbC", False),
    ("StringNotIn", ["abc"], "x", True),
    ("StringContains", ["B"], "abc", True),
    ("StringNotContains", ["B"], "abc", False),
    ("StringNotContains", ["z", "y"], "abc", True),
    ("StringBeginsWith", ["AB", "x"], "abc", True),
    ("StringNotBeginsWith", ["AB", "x"], "abc", False),
    ("StringEndsWith", ["BC"], "abc", True),
    ("StringNotEndsWith", ["zz"], "abc", True),
    ("StringIn", ["5"], 5, True),            # numbers by their JSON text (documented choice)
    ("StringBeginsWith", ["tr"], True, True),
    ("StringIn", ["x"], {"a": 1}, False),
    ("StringNotIn", ["x"], {"a": 1}, False),  # object: type mismatch, not matched
    ("StringIn", [""], "", True),
    ("StringContains", [""], "abc", True),
])
def test_string_operators(op: str, values: list, t: Any, expected: bool) -> None:
    assert both(SubscriptionFilter.from_dict(adv(op, values=values)), eg({"t": t})) is expected


def test_string_case_insensitive_non_ascii() -> None:
    f = SubscriptionFilter.from_dict(adv("StringBeginsWith", values=["ÉTÉ"]))
    assert both(f, eg({"t": "été 2026"}))


# ---- null / missing ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", [o for o in OPERATORS if o not in ("IsNullOrUndefined", "IsNotNull")])
@pytest.mark.parametrize("data", [{}, {"t": None}, None, "not-an-object", {"u": {"t": 1}}])
def test_missing_and_null_match_only_number_not_in_and_string_not_in(op: str, data: Any) -> None:
    flt: dict[str, Any] = {"operatorType": op, "key": "data.t"}
    if op in ("NumberInRange", "NumberNotInRange"):
        flt["values"] = [[0, 1]]
    elif op.startswith("String"):
        flt["values"] = ["a"]
    elif op == "BoolEquals":
        flt["value"] = True
    elif op in ("NumberIn", "NumberNotIn"):
        flt["values"] = [1]
    else:
        flt["value"] = 1
    f = SubscriptionFilter.from_dict({"advancedFilters": [flt]})
    assert both(f, eg(data)) is (op in ("NumberNotIn", "StringNotIn"))


def test_is_not_null_and_is_null_on_arrays_and_objects() -> None:
    nn = SubscriptionFilter.from_dict(adv("IsNotNull"))
    nu = SubscriptionFilter.from_dict(adv("IsNullOrUndefined"))
    for value in ([], [1], {}, False, 0):
        assert both(nn, eg({"t": value})) and not both(nu, eg({"t": value}))


# ---- arrays --------------------------------------------------------------------------------------------------

def arr(flt: dict) -> dict:
    return {**flt, "enableAdvancedFilteringOnArrays": True}


def test_arrays_without_flag_never_match_typed_operators() -> None:
    cases: list[tuple[str, dict]] = [
        ("StringNotIn", {"values": ["x"]}), ("NumberNotIn", {"values": [9]}), ("BoolEquals", {"value": True})]
    for op, kw in cases:
        assert not both(SubscriptionFilter.from_dict(adv(op, **kw)), eg({"t": [1, True, "a"]}))


def test_arrays_with_flag() -> None:
    gt = SubscriptionFilter.from_dict(arr(adv("NumberGreaterThan", value=5)))
    assert both(gt, eg({"t": [1, 2, 6]}))
    assert not both(gt, eg({"t": [1, "9", True]}))
    assert not both(gt, eg({"t": []}))
    not_in = SubscriptionFilter.from_dict(arr(adv("StringNotIn", values=["a"])))
    assert both(not_in, eg({"t": ["b", "c"]}))
    assert not both(not_in, eg({"t": ["b", "A"]}))
    assert both(not_in, eg({"t": []}))            # choice: no element matches ⇒ NOT passes
    assert not both(not_in, eg({"t": [["a"]]}))   # nested arrays unsupported
    b = SubscriptionFilter.from_dict(arr(adv("BoolEquals", value=False)))
    assert both(b, eg({"t": [True, False]}))
    rng = SubscriptionFilter.from_dict(arr(adv("NumberNotInRange", values=[[0, 10]])))
    assert both(rng, eg({"t": [11, 12]})) and not both(rng, eg({"t": [11, 5]}))


# ---- keys and schemas ----------------------------------------------------------------------------------------

def test_envelope_keys_case_insensitive_and_data_prefix() -> None:
    f = SubscriptionFilter.from_dict({"advancedFilters": [
        {"operatorType": "StringIn", "key": "EVENTTYPE", "values": ["microsoft.devices.devicetelemetry"]},
        {"operatorType": "StringBeginsWith", "key": "Subject", "values": ["devices/"]},
        {"operatorType": "StringIn", "key": "DataVersion", "values": [""]},
        {"operatorType": "NumberIn", "key": "Data.t", "values": [1]},
    ]})
    assert both(f, eg({"t": 1}))
    assert not both(f, eg({"T": 1}))   # inside data, keys are case-sensitive (documented choice)


def test_cloudevents_schema_and_aliases() -> None:
    f = SubscriptionFilter.from_dict({
        "includedEventTypes": ["Microsoft.Devices.DeviceTelemetry"],
        "subjectBeginsWith": "devices/",
        "advancedFilters": [
            {"operatorType": "StringIn", "key": "EventType", "values": ["Microsoft.Devices.DeviceTelemetry"]},
            {"operatorType": "StringBeginsWith", "key": "source", "values": ["/hub"]},
            {"operatorType": "StringBeginsWith", "key": "comexampleext", "values": ["5", "1"]},
            {"operatorType": "NumberIn", "key": "data.t", "values": [1]},
        ],
    })
    assert both(f, ce({"t": 1}, comexampleext=5))  # the docs' numeric extension attribute example
    assert not both(f, ce({"t": 1}))                # extension absent
    assert f.explain(ce({"t": 1})) == "advancedFilters[2] StringBeginsWith comexampleext"
    # an extension name is not an Event Grid envelope field
    assert not both(f, {**eg({"t": 1}), "comexampleext": 5})


def test_included_event_types_all_and_case() -> None:
    assert SubscriptionFilter.from_dict({"includedEventTypes": "All"}).matches(eg(event_type="x"))
    assert SubscriptionFilter.from_dict({"includedEventTypes": ["All"]}).matches(eg(event_type="x"))
    f = SubscriptionFilter.from_dict({"includedEventTypes": ["Microsoft.Devices.DeviceTelemetry"]})
    assert both(f, eg(event_type="MICROSOFT.DEVICES.DEVICETELEMETRY"))  # choice: case-insensitive
    assert not both(f, {"id": "x"})
    assert both(f, ce()) and not both(f, ce(type="Other"))


def test_subject_filters_edge_cases() -> None:
    f = SubscriptionFilter.from_dict({"subjectBeginsWith": "Devices/", "subjectEndsWith": "/X"})
    assert both(f, eg(subject="devices/a/x"))
    assert not both(f, {"id": "no subject"})
    cs = SubscriptionFilter.from_dict({"subjectEndsWith": "É", "isSubjectCaseSensitive": True})
    assert both(cs, eg(subject="aÉ")) and not both(cs, eg(subject="aé"))
    ci = SubscriptionFilter.from_dict({"subjectEndsWith": "É"})
    assert both(ci, eg(subject="aé"))


def test_explain_names_the_rejecting_filter() -> None:
    f = SubscriptionFilter.from_dict({
        "includedEventTypes": ["Microsoft.Devices.DeviceTelemetry"],
        "subjectBeginsWith": "devices/",
        "subjectEndsWith": "-01",
        "advancedFilters": [
            {"operatorType": "IsNotNull", "key": "data.a"},
            {"operatorType": "IsNotNull", "key": "data.b"},
            {"operatorType": "NumberGreaterThan", "key": "data.temperature", "value": 20},
        ],
    })
    assert f.explain(eg(event_type="Other")) == "includedEventTypes"
    assert f.explain(eg(subject="x-01")) == "subjectBeginsWith"
    assert f.explain(eg(subject="devices/x")) == "subjectEndsWith"
    assert f.explain(eg({"a": 1, "b": 2, "temperature": 3}, subject="devices/x-01")) == \
        "advancedFilters[2] NumberGreaterThan data.temperature"
    assert f.explain(eg({"a": 1, "b": 2, "temperature": 30}, subject="devices/x-01")) is None


# ---- validation ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flt", "message"), [
    ({"advancedFilters": [{"operatorType": "StringLike", "key": "data.a", "values": ["x"]}]},
     r"advancedFilters\[0\]: unknown operatorType 'StringLike'"),
    ({"advancedFilters": [{"operatorType": "StringIn", "values": ["x"]}]}, r"advancedFilters\[0\]: StringIn: 'key'"),
    ({"advancedFilters": [{"operatorType": "StringIn", "key": "data..a", "values": ["x"]}]}, "empty segment"),
    ({"advancedFilters": [{"operatorType": "StringIn", "key": "subject.a", "values": ["x"]}]}, "only data."),
    ({"advancedFilters": [{"operatorType": "StringIn", "key": "data.a", "values": []}]}, "non-empty 'values'"),
    ({"advancedFilters": [{"operatorType": "StringIn", "key": "data.a", "values": [1]}]},
     r"values\[0\]: StringIn: expected a string"),
    ({"advancedFilters": [{"operatorType": "NumberIn", "key": "data.a", "values": [True]}]}, "expected a number"),
    ({"advancedFilters": [{"operatorType": "NumberIn", "key": "data.a", "values": ["5"]}]}, "expected a number"),
    ({"advancedFilters": [{"operatorType": "NumberGreaterThan", "key": "data.a"}]}, "single 'value'"),
    ({"advancedFilters": [{"operatorType": "BoolEquals", "key": "data.a", "value": "true"}]}, "true or false"),
    ({"advancedFilters": [{"operatorType": "NumberInRange", "key": "data.a", "values": [[1]]}]}, r"\[low, high\]"),
    ({"advancedFilters": [{"operatorType": "NumberInRange", "key": "data.a", "values": [[2, 1]]}]}, "greater than"),
    ({"advancedFilters": [{"operatorType": "NumberGreaterThan", "key": "data.a", "value": float("nan")}]}, "NaN"),
    ({"advancedFilters": [{"operatorType": "IsNotNull", "key": "data." + "a" * 600}]}, "key longer than 512"),
    ({"advancedFilters": ["x"]}, "expected an object"),
    ({"advancedFilters": {}}, "must be an array"),
    ({"includedEventTypes": []}, "includedEventTypes"),
    ({"includedEventTypes": ["x" * 513]}, r"includedEventTypes\[0\]: string value longer"),
    ({"isSubjectCaseSensitive": "yes"}, "isSubjectCaseSensitive: must be true or false"),
    ({"subjectBeginsWith": 5}, "subjectBeginsWith: must be a string"),
    ({"subjectbeginswith": "x"}, "unknown field"),
])
def test_invalid_filters(flt: dict, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        SubscriptionFilter.from_dict(flt)


def test_filter_error_is_value_error_and_null_ops_count_no_values() -> None:
    assert issubclass(FilterError, ValueError)
    filters = [{"operatorType": "IsNullOrUndefined", "key": f"data.k{i}"} for i in range(24)]
    filters.append({"operatorType": "StringIn", "key": "data.s", "values": [str(i) for i in range(25)]})
    SubscriptionFilter.from_dict({"advancedFilters": filters})


def test_operator_name_case_normalized_and_value_form() -> None:
    f = SubscriptionFilter.from_dict({"advancedFilters": [
        {"operatorType": "numberin", "key": "data.a", "value": 3},  # single value accepted for a multi-value op
    ]})
    assert f.to_arm()["advancedFilters"] == [{"operatorType": "NumberIn", "key": "data.a", "values": [3]}]
    assert f.matches(eg({"a": 3}))


# ---- export --------------------------------------------------------------------------------------------------

FULL = {
    "includedEventTypes": ["Microsoft.Devices.DeviceTelemetry"],
    "subjectBeginsWith": "devices/",
    "subjectEndsWith": "-01",
    "isSubjectCaseSensitive": True,
    "enableAdvancedFilteringOnArrays": True,
    "advancedFilters": [
        {"operatorType": "NumberGreaterThan", "key": "data.body.temperature", "value": 20.5},
        {"operatorType": "StringIn", "key": "data.properties.path", "values": ["hot path", "warm"]},
        {"operatorType": "NumberInRange", "key": "data.body.p", "values": [[900, 1100], [0.5, 1]]},
        {"operatorType": "BoolEquals", "key": "data.body.ok", "value": False},
        {"operatorType": "IsNullOrUndefined", "key": "data.body.err"},
    ],
}


def test_to_arm_round_trip() -> None:
    f = SubscriptionFilter.from_dict(FULL)
    assert f.to_arm() == FULL
    assert SubscriptionFilter.from_dict(f.to_arm()) == f
    assert SubscriptionFilter.from_dict({}).to_arm() == {
        "isSubjectCaseSensitive": False, "enableAdvancedFilteringOnArrays": False}


FULL_TRUE = {**FULL, "advancedFilters": [
    f if f["operatorType"] != "BoolEquals" else {**f, "value": True} for f in FULL["advancedFilters"]]}
FULL_FALSE = FULL


def test_to_az_args() -> None:
    assert SubscriptionFilter.from_dict(FULL_TRUE).to_az_args() == [
        "--included-event-types", "Microsoft.Devices.DeviceTelemetry",
        "--subject-begins-with", "devices/",
        "--subject-ends-with", "-01",
        "--subject-case-sensitive", "true",
        "--enable-advanced-filtering-on-arrays", "true",
        "--advanced-filter", "data.body.temperature", "NumberGreaterThan", "20.5",
        "--advanced-filter", "data.properties.path", "StringIn", "hot path", "warm",
        "--advanced-filter", "data.body.p", "NumberInRange", "900,1100", "0.5,1",
        "--advanced-filter", "data.body.ok", "BoolEquals", "true",
        "--advanced-filter", "data.body.err", "IsNullOrUndefined",
    ]
    assert SubscriptionFilter.from_dict(None).to_az_args() == []


def test_to_az_args_refuses_bool_equals_false_which_az_would_read_as_true() -> None:
    """azure-cli builds BoolEquals with bool(text): 'false' is a non-empty string, hence True. Exporting it would
    deploy the opposite filter, so the export refuses and points at the ARM form."""
    with pytest.raises(FilterError) as refused:
        SubscriptionFilter.from_dict(FULL_FALSE).to_az_args()
    assert refused.value.path == "advancedFilters[3]"
    assert "--format arm" in refused.value.reason
    assert SubscriptionFilter.from_dict(FULL_FALSE).to_arm()["advancedFilters"][3]["value"] is False
