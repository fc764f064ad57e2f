"""Event Grid subscription filters with Azure's semantics, compiled once into closures.

``SubscriptionFilter.from_dict(d)`` takes the ARM/REST ``filter`` object of an event subscription and validates it
(``FilterError`` names the offending filter); ``.matches(event)`` evaluates one event dict in the Event Grid schema
or the CloudEvents 1.0 schema (``specversion`` present). Everything is precomputed in ``from_dict`` — lower-cased
value sets and prefix tuples, decimal thresholds, key paths — so ``matches`` only walks dicts and compares.

Documented rules implemented here (docs/azure-behaviour.md §2): type AND subject AND every advanced filter; multiple
values of one positive operator are OR-ed, of a NOT operator AND-ed ("none of"); a missing key matches only
NumberNotIn and StringNotIn (and IsNullOrUndefined); string comparisons are case-insensitive; numbers compare as
decimals; arrays are evaluated element-wise only with ``enableAdvancedFilteringOnArrays`` (any element for positive
operators, no element for NOT operators, elements of another type ignored, arrays holding objects/arrays unsupported
⇒ no match) and without the flag an array never matches a typed operator; limits are 25 advanced filters, 25 values
in total and 512 characters per string value.

Choices where the documentation is silent (each is tested in ``tests/filters``):

* JSON ``null`` counts as a missing key for every typed operator (NumberNotIn/StringNotIn match it, the others
  do not), the same grouping as ``IsNullOrUndefined``.
* Type mismatch on a scalar (e.g. NumberGreaterThan on ``"7"``, BoolEquals on ``"true"``, any typed operator on an
  object) ⇒ the filter does not match, for positive and NOT operators alike. Booleans are never numbers.
* String operators accept numbers and booleans by their JSON text (``5`` → ``"5"``, ``true`` → ``"true"``),
  following the CloudEvents example in the docs that applies StringBeginsWith to a numeric attribute. Python floats
  use ``repr`` (so ``5.0`` is ``"5.0"``).
* NaN is not a number (type mismatch); infinities compare as decimals do.
* NumberInRange/NumberNotInRange on a missing key ⇒ not matched (like the other operators added with them).
* ``includedEventTypes`` matches case-insensitively (all Event Grid string comparisons are).
* ``subjectBeginsWith``/``subjectEndsWith`` set but the event has no string subject ⇒ rejected.
* Keys: envelope names are case-insensitive (``Subject``, ``EVENTTYPE``); ``data`` as the first segment is
  case-insensitive too (``Data.temp``), but segments *inside* ``data`` are case-sensitive, as JSON keys are. Event
  Grid names are aliased to their CloudEvents counterparts and back (``EventType``↔``type``, ``Topic``↔``source``,
  ``ID``/``eventid``↔``id``), so one filter works on both schemas. Any other single-segment key is a CloudEvents
  context attribute (looked up lower-cased); in the Event Grid schema it does not exist. Dotted keys must start with
  ``data.``; empty segments are rejected.
* Value counting for the 25-values limit: single-value operators count 1, each ``values`` entry counts 1 (a range
  pair counts 1), IsNullOrUndefined/IsNotNull count 0. Ranges must be ``[low, high]`` with low ≤ high; multi-value
  operators need at least one value.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from shared.filters.lexer import dict_path

__all__ = ["OPERATORS", "FilterError", "SubscriptionFilter"]

MAX_ADVANCED_FILTERS: Final = 25
MAX_TOTAL_VALUES: Final = 25
MAX_STRING_LENGTH: Final = 512


class FilterError(ValueError):
    """An invalid subscription filter; the message names the filter (``path``, e.g. ``advancedFilters[3]``) and why."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path

    def under(self, prefix: str) -> FilterError:
        """The same error located inside a larger document (``prefix`` e.g. ``filters.subscription``)."""
        return FilterError(self.reason, f"{prefix}.{self.path}" if self.path else prefix)


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()

_NUMBER_SINGLE = {
    "NumberGreaterThan": operator.gt,
    "NumberGreaterThanOrEquals": operator.ge,
    "NumberLessThan": operator.lt,
    "NumberLessThanOrEquals": operator.le,
}
_NUMBER_MULTI = ("NumberIn", "NumberNotIn")
_RANGE = ("NumberInRange", "NumberNotInRange")
_STRING = (
    "StringIn",
    "StringNotIn",
    "StringContains",
    "StringNotContains",
    "StringBeginsWith",
    "StringNotBeginsWith",
    "StringEndsWith",
    "StringNotEndsWith",
)
_NULL_OPS = ("IsNullOrUndefined", "IsNotNull")
OPERATORS: Final = (*_NUMBER_SINGLE, *_NUMBER_MULTI, *_RANGE, "BoolEquals", *_STRING, *_NULL_OPS)
_NOT_OPS = frozenset(
    {"NumberNotIn", "NumberNotInRange", "StringNotIn", "StringNotContains", "StringNotBeginsWith", "StringNotEndsWith"}
)
_MATCH_MISSING = frozenset({"NumberNotIn", "StringNotIn"})
_OPS_BY_LOWER = {op.lower(): op for op in OPERATORS}

# lower-cased key -> attribute name, per schema
_EG_ENVELOPE = {
    "id": "id",
    "eventid": "id",
    "topic": "topic",
    "source": "topic",
    "subject": "subject",
    "eventtype": "eventType",
    "type": "eventType",
    "dataversion": "dataVersion",
    "eventtime": "eventTime",
    "time": "eventTime",
    "metadataversion": "metadataVersion",
}
_CE_ALIASES = {"eventid": "id", "eventtype": "type", "topic": "source", "eventtime": "time"}

Getter = Callable[[Mapping[str, Any]], Any]
Test = Callable[[Any], bool | None]  # True/False, or None when the value's type does not apply
Predicate = Callable[[Mapping[str, Any]], bool]


# --------------------------------------------------------------------------------------------------------------
# value normalisation (compile time)


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise FilterError(f"expected a number, got {type(value).__name__} {value!r}", where)
    d = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else str(value))
    if d.is_nan():
        raise FilterError("NaN is not a valid number", where)
    return d


def _exact_native(d: Decimal) -> float | None:
    """A float standing for ``d`` in native comparisons, when that is exact for every event value.

    Needs ``d`` to be exactly a float ``f`` *and* ``repr(f)`` to be ``d``: then for any float event value ``v``,
    ``v`` vs ``f`` orders like ``Decimal(repr(v))`` vs ``d`` (distinct floats have disjoint shortest-repr
    intervals), and ints/Decimals compare with ``f`` exactly. Otherwise (``0.1``, ``10**30``) use Decimals.
    """
    if not d.is_finite():
        return float(d)
    f = float(d)
    return f if Decimal(f) == d and Decimal(repr(f)) == d else None


def _number_key(v: Any, exact: bool) -> Any:
    """The event value as something comparable with the compiled thresholds, or MISSING when it is not a number."""
    t = type(v)
    if t is int:
        return v
    if t is float:
        if v != v:
            return MISSING
        return v if exact else Decimal(repr(v))
    if t is Decimal:
        return MISSING if v.is_nan() else v
    return MISSING


def _string_key(v: Any) -> str | None:
    t = type(v)
    if t is str:
        return str.lower(v)
    if t is bool:
        return "true" if v else "false"
    if t is int or t is Decimal:
        return str(v).lower()
    if t is float:
        return repr(v).lower() if math.isfinite(v) else None
    return None


# --------------------------------------------------------------------------------------------------------------
# operator tests: value -> True / False / None (type does not apply)


def _number_single_test(op: Callable[[Any, Any], bool], d: Decimal) -> Test:
    native = _exact_native(d)
    if native is not None:
        target: Any = native

        def fast(v: Any) -> bool | None:
            t = type(v)
            if t is int or t is float:
                return op(v, target) if v == v else None
            if t is Decimal and not v.is_nan():
                return op(v, target)
            return None

        return fast

    def slow(v: Any) -> bool | None:
        k = _number_key(v, False)
        return None if k is MISSING else op(k, d)

    return slow


def _number_set_test(ds: Sequence[Decimal]) -> Test:
    natives = [_exact_native(d) for d in ds]
    exact = all(n is not None for n in natives)
    members = frozenset(n if n is not None else d for n, d in zip(natives, ds, strict=True))

    if exact:

        def fast(v: Any) -> bool | None:
            t = type(v)
            if t is int or t is float:
                return v in members if v == v else None
            if t is Decimal and not v.is_nan():
                return v in members
            return None

        return fast

    def slow(v: Any) -> bool | None:
        k = _number_key(v, False)
        return None if k is MISSING else k in members

    return slow


def _range_test(ranges: Sequence[tuple[Decimal, Decimal]]) -> Test:
    flat = [_exact_native(x) for pair in ranges for x in pair]
    exact = all(n is not None for n in flat)
    bounds: tuple[tuple[Any, Any], ...] = (
        tuple(zip(flat[::2], flat[1::2], strict=True)) if exact else tuple(ranges)
    )

    def test(v: Any) -> bool | None:
        k = _number_key(v, exact)
        if k is MISSING:
            return None
        return any(lo <= k <= hi for lo, hi in bounds)

    return test


def _string_test(kind: str, values: Sequence[str]) -> Test:
    lowered = tuple(v.lower() for v in values)
    if kind == "In":
        members = frozenset(lowered)

        def is_in(v: Any) -> bool | None:
            if type(v) is str:
                return v.lower() in members
            s = _string_key(v)
            return None if s is None else s in members

        return is_in
    if kind in ("BeginsWith", "EndsWith"):
        method = str.startswith if kind == "BeginsWith" else str.endswith

        def affix(v: Any) -> bool | None:
            s = v.lower() if type(v) is str else _string_key(v)
            return None if s is None else method(s, lowered)

        return affix

    def contains(v: Any) -> bool | None:
        s = v.lower() if type(v) is str else _string_key(v)
        if s is None:
            return None
        return any(x in s for x in lowered)

    return contains


def _bool_test(target: bool) -> Test:
    def test(v: Any) -> bool | None:
        return v is target if type(v) is bool else None

    return test


# --------------------------------------------------------------------------------------------------------------
# keys


def _parse_key(key: Any, where: str) -> tuple[str, tuple[str, ...]]:
    """(lower-cased top-level name, path inside it). ``data.a.b`` -> ("data", ("a", "b"))."""
    if not isinstance(key, str) or not key:
        raise FilterError("'key' must be a non-empty string", where)
    if len(key) > MAX_STRING_LENGTH:
        raise FilterError(f"key longer than {MAX_STRING_LENGTH} characters", where)
    parts = key.split(".")
    if any(not p for p in parts):
        raise FilterError(f"key {key!r} has an empty segment", where)
    head = parts[0].lower()
    if len(parts) > 1 and head != "data":
        raise FilterError(f"key {key!r}: only data.<path> keys may contain '.'", where)
    return head, tuple(parts[1:])


def _path_getter(top: str, path: tuple[str, ...]) -> Getter:
    missing = MISSING
    if not path:

        def get0(ev: Mapping[str, Any]) -> Any:
            return ev.get(top, missing)

        return get0
    if len(path) == 1:
        (k1,) = path

        def get1(ev: Mapping[str, Any]) -> Any:
            d = ev.get(top)
            return d.get(k1, missing) if type(d) is dict else missing

        return get1
    if len(path) == 2:
        k1, k2 = path

        def get2(ev: Mapping[str, Any]) -> Any:
            d = ev.get(top)
            if type(d) is not dict:
                return missing
            d = d.get(k1)
            return d.get(k2, missing) if type(d) is dict else missing

        return get2

    def getn(ev: Mapping[str, Any]) -> Any:
        return dict_path(ev.get(top), path, missing)

    return getn


Lookup = tuple[str, tuple[str, ...]] | None  # (top-level attribute, path inside it); None = never present


def _lookups(head: str, path: tuple[str, ...]) -> tuple[Lookup, Lookup]:
    """Where a key lives in (an Event Grid schema event, a CloudEvents schema event)."""
    if head == "data":
        return ("data", path), ("data", path)
    eg_name = _EG_ENVELOPE.get(head)
    return ((eg_name, ()) if eg_name else None), (_CE_ALIASES.get(head, head), ())


def _getter(lookup: Lookup) -> Getter:
    if lookup is None:
        missing = MISSING

        def absent(ev: Mapping[str, Any]) -> Any:
            return missing

        return absent
    return _path_getter(*lookup)


# --------------------------------------------------------------------------------------------------------------
# one advanced filter


def _predicate(getter: Getter, test: Test, op: str, arrays: bool) -> Predicate:
    """Combine value lookup, missing/null rule, array rule and the operator test into one closure."""
    if op == "IsNullOrUndefined":

        def is_null(ev: Mapping[str, Any]) -> bool:
            v = getter(ev)
            return v is MISSING or v is None

        return is_null
    if op == "IsNotNull":

        def not_null(ev: Mapping[str, Any]) -> bool:
            v = getter(ev)
            return v is not MISSING and v is not None

        return not_null

    on_missing = op in _MATCH_MISSING
    negate = op in _NOT_OPS
    missing = MISSING

    def pred(ev: Mapping[str, Any]) -> bool:
        v = getter(ev)
        if v is missing or v is None:
            return on_missing
        if type(v) is list:
            if not arrays:
                return False
            hit = False
            for e in v:
                if type(e) is dict or type(e) is list:
                    return False
                if test(e) is True:
                    hit = True
            return not hit if negate else hit
        r = test(v)
        if r is None:
            return False
        return not r if negate else r

    return pred


@dataclass(frozen=True, slots=True)
class _Advanced:
    index: int
    operator: str
    key: str
    arm: dict[str, Any]
    predicate_eg: Predicate
    predicate_ce: Predicate
    n_values: int
    lookup_eg: Lookup
    lookup_ce: Lookup

    def describe(self) -> str:
        return f"advancedFilters[{self.index}] {self.operator} {self.key}"


def _check_string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FilterError(f"expected a string, got {type(value).__name__} {value!r}", where)
    if len(value) > MAX_STRING_LENGTH:
        raise FilterError(f"string value longer than {MAX_STRING_LENGTH} characters ({len(value)})", where)
    return value


def _values_list(raw: Mapping[str, Any], where: str) -> list[Any]:
    values = raw.get("values")
    if values is None and "value" in raw:
        values = [raw["value"]]
    if not isinstance(values, list) or not values:
        raise FilterError("needs a non-empty 'values' array", where)
    return values


def _compile_advanced(index: int, raw: Any, arrays: bool) -> _Advanced:
    where = f"advancedFilters[{index}]"
    if not isinstance(raw, Mapping):
        raise FilterError(f"expected an object, got {type(raw).__name__}", where)
    op_raw = raw.get("operatorType")
    op = _OPS_BY_LOWER.get(op_raw.lower()) if isinstance(op_raw, str) else None
    if op is None:
        raise FilterError(f"unknown operatorType {op_raw!r} (expected one of {', '.join(OPERATORS)})", where)
    try:
        return _compile_known(index, op, raw, arrays)
    except FilterError as exc:
        raise FilterError(f"{op}: {exc.reason}", exc.path) from None


def _compile_known(index: int, op: str, raw: Mapping[str, Any], arrays: bool) -> _Advanced:
    where = f"advancedFilters[{index}]"
    key = raw.get("key")
    head, path = _parse_key(key, where)
    assert isinstance(key, str)
    arm: dict[str, Any] = {"operatorType": op, "key": key}
    test: Test
    n_values: int
    if op in _NULL_OPS:
        test, n_values = _bool_test(True), 0  # unused
    elif op in _NUMBER_SINGLE or op == "BoolEquals":
        if "value" not in raw:
            raise FilterError("needs a single 'value'", where)
        value = raw["value"]
        if op == "BoolEquals":
            if not isinstance(value, bool):
                raise FilterError(f"'value' must be true or false, got {value!r}", where)
            test = _bool_test(value)
        else:
            test = _number_single_test(_NUMBER_SINGLE[op], _decimal(value, f"{where}.value"))
        arm["value"] = value
        n_values = 1
    elif op in _NUMBER_MULTI:
        values = _values_list(raw, where)
        test = _number_set_test([_decimal(v, f"{where}.values[{i}]") for i, v in enumerate(values)])
        arm["values"] = list(values)
        n_values = len(values)
    elif op in _RANGE:
        values = _values_list(raw, where)
        ranges: list[tuple[Decimal, Decimal]] = []
        for i, pair in enumerate(values):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise FilterError(f"a range must be a [low, high] pair, got {pair!r}", f"{where}.values[{i}]")
            lo, hi = _decimal(pair[0], f"{where}.values[{i}][0]"), _decimal(pair[1], f"{where}.values[{i}][1]")
            if lo > hi:
                raise FilterError(f"low bound {pair[0]} is greater than high bound {pair[1]}", f"{where}.values[{i}]")
            ranges.append((lo, hi))
        test = _range_test(ranges)
        arm["values"] = [list(p) for p in values]
        n_values = len(values)
    else:
        values = _values_list(raw, where)
        strings = [_check_string(v, f"{where}.values[{i}]") for i, v in enumerate(values)]
        kind = op.removeprefix("String").removeprefix("Not")
        test = _string_test(kind, strings)
        arm["values"] = strings
        n_values = len(values)
    lookup_eg, lookup_ce = _lookups(head, path)
    return _Advanced(
        index=index,
        operator=op,
        key=key,
        arm=arm,
        predicate_eg=_predicate(_getter(lookup_eg), test, op, arrays),
        predicate_ce=_predicate(_getter(lookup_ce), test, op, arrays),
        n_values=n_values,
        lookup_eg=lookup_eg,
        lookup_ce=lookup_ce,
    )


# --------------------------------------------------------------------------------------------------------------
# the subscription filter


def _bool_field(d: Mapping[str, Any], name: str, default: bool) -> bool:
    v = d.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise FilterError(f"must be true or false, got {v!r}", name)
    return v


def _opt_string(d: Mapping[str, Any], name: str) -> str:
    v = d.get(name)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise FilterError(f"must be a string, got {type(v).__name__}", name)
    return v


class SubscriptionFilter:
    """A compiled Event Grid subscription filter. Build with :meth:`from_dict`."""

    __slots__ = (
        "_advanced",
        "_arrays",
        "_begins",
        "_case_sensitive",
        "_ce_checks",
        "_eg_checks",
        "_ends",
        "_types",
        "_types_lower",
    )

    def __init__(
        self,
        *,
        included_event_types: Sequence[str] | None,
        subject_begins_with: str,
        subject_ends_with: str,
        case_sensitive: bool,
        arrays: bool,
        advanced: Sequence[_Advanced],
    ) -> None:
        self._types = tuple(included_event_types) if included_event_types is not None else None
        self._types_lower = frozenset(t.lower() for t in self._types) if self._types is not None else None
        self._begins = subject_begins_with
        self._ends = subject_ends_with
        self._case_sensitive = case_sensitive
        self._arrays = arrays
        self._advanced = tuple(advanced)
        self._eg_checks, self._ce_checks = self._build_checks()

    # ---- construction ----------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SubscriptionFilter:
        """Validate and compile an ARM/REST ``filter`` object. ``None`` or ``{}`` matches every event."""
        if d is None:
            d = {}
        if not isinstance(d, Mapping):
            raise FilterError(f"expected an object, got {type(d).__name__}")
        known = {
            "includedEventTypes",
            "subjectBeginsWith",
            "subjectEndsWith",
            "isSubjectCaseSensitive",
            "enableAdvancedFilteringOnArrays",
            "advancedFilters",
        }
        unknown = sorted(set(d) - known)
        if unknown:
            raise FilterError(f"unknown field(s) {', '.join(map(str, unknown))}")
        types_raw = d.get("includedEventTypes")
        types: list[str] | None
        if types_raw is None or types_raw == "All" or types_raw == ["All"]:
            types = None
        elif isinstance(types_raw, list) and types_raw:
            types = [_check_string(t, f"includedEventTypes[{i}]") for i, t in enumerate(types_raw)]
        else:
            raise FilterError("must be null, \"All\" or a non-empty array of strings", "includedEventTypes")
        begins = _opt_string(d, "subjectBeginsWith")
        ends = _opt_string(d, "subjectEndsWith")
        case_sensitive = _bool_field(d, "isSubjectCaseSensitive", False)
        arrays = _bool_field(d, "enableAdvancedFilteringOnArrays", False)
        raw_adv = d.get("advancedFilters")
        if raw_adv is None:
            raw_adv = []
        if not isinstance(raw_adv, list):
            raise FilterError("must be an array", "advancedFilters")
        if len(raw_adv) > MAX_ADVANCED_FILTERS:
            raise FilterError(
                f"{len(raw_adv)} filters, at most {MAX_ADVANCED_FILTERS} allowed per subscription", "advancedFilters"
            )
        advanced = [_compile_advanced(i, f, arrays) for i, f in enumerate(raw_adv)]
        total = 0
        for a in advanced:
            total += a.n_values
            if total > MAX_TOTAL_VALUES:
                raise FilterError(
                    f"{a.operator} brings the total number of filter values to {total}, "
                    f"at most {MAX_TOTAL_VALUES} allowed across all advanced filters",
                    f"advancedFilters[{a.index}]",
                )
        return cls(
            included_event_types=types,
            subject_begins_with=begins,
            subject_ends_with=ends,
            case_sensitive=case_sensitive,
            arrays=arrays,
            advanced=advanced,
        )

    def _build_checks(self) -> tuple[tuple[tuple[str, Predicate], ...], tuple[tuple[str, Predicate], ...]]:
        """Named predicates per schema, cheapest first (type, subject, then advanced filters in order)."""
        common: list[tuple[str, Predicate, Predicate]] = []
        types = self._types_lower
        if types is not None:

            def eg_type(ev: Mapping[str, Any]) -> bool:
                t = ev.get("eventType")
                return type(t) is str and t.lower() in types

            def ce_type(ev: Mapping[str, Any]) -> bool:
                t = ev.get("type")
                return type(t) is str and t.lower() in types

            common.append(("includedEventTypes", eg_type, ce_type))
        for name, affix in (("subjectBeginsWith", self._begins), ("subjectEndsWith", self._ends)):
            if affix:
                pred = self._subject_predicate(affix, name == "subjectBeginsWith")
                common.append((name, pred, pred))
        for a in self._advanced:
            common.append((a.describe(), a.predicate_eg, a.predicate_ce))
        return tuple((n, eg) for n, eg, _ in common), tuple((n, ce) for n, _, ce in common)

    def _subject_predicate(self, affix: str, begins: bool) -> Predicate:
        if self._case_sensitive:
            if begins:

                def cs_begins(ev: Mapping[str, Any]) -> bool:
                    s = ev.get("subject")
                    return type(s) is str and s.startswith(affix)

                return cs_begins

            def cs_ends(ev: Mapping[str, Any]) -> bool:
                s = ev.get("subject")
                return type(s) is str and s.endswith(affix)

            return cs_ends
        low = affix.lower()
        if begins:

            def ci_begins(ev: Mapping[str, Any]) -> bool:
                s = ev.get("subject")
                return type(s) is str and s.lower().startswith(low)

            return ci_begins

        def ci_ends(ev: Mapping[str, Any]) -> bool:
            s = ev.get("subject")
            return type(s) is str and s.lower().endswith(low)

        return ci_ends

    # ---- evaluation ------------------------------------------------------------------------------------------

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when the event passes every part of the filter (the same checks ``explain`` names, in order)."""
        return self.explain(event) is None

    def explain(self, event: Mapping[str, Any]) -> str | None:
        """None when the event matches, else the name of the first filter that rejects it."""
        for name, pred in self._ce_checks if "specversion" in event else self._eg_checks:
            if not pred(event):
                return name
        return None

    # ---- export ----------------------------------------------------------------------------------------------

    @property
    def included_event_types(self) -> tuple[str, ...] | None:
        return self._types

    def to_arm(self) -> dict[str, Any]:
        """The normalized ARM ``filter`` object (operator names canonical, ``value`` vs ``values`` per operator)."""
        out: dict[str, Any] = {}
        if self._types is not None:
            out["includedEventTypes"] = list(self._types)
        if self._begins:
            out["subjectBeginsWith"] = self._begins
        if self._ends:
            out["subjectEndsWith"] = self._ends
        out["isSubjectCaseSensitive"] = self._case_sensitive
        out["enableAdvancedFilteringOnArrays"] = self._arrays
        if self._advanced:
            out["advancedFilters"] = [dict(a.arm) for a in self._advanced]
        return out

    def to_az_args(self) -> list[str]:
        """Arguments for ``az eventgrid event-subscription create`` expressing this filter.

        Raises FilterError for a filter az cannot express as written (``BoolEquals`` false: see below). Values are
        read by az as its source does: numbers with ``float()``, ranges as ``low,high``, no value for the
        null tests (azure-cli's ``eventgrid/advanced_filter.py``)."""
        args: list[str] = []
        if self._types is not None:
            args += ["--included-event-types", *self._types]
        if self._begins:
            args += ["--subject-begins-with", self._begins]
        if self._ends:
            args += ["--subject-ends-with", self._ends]
        if self._case_sensitive:
            args += ["--subject-case-sensitive", "true"]
        if self._arrays:
            args += ["--enable-advanced-filtering-on-arrays", "true"]
        for a in self._advanced:
            if a.operator == "BoolEquals" and a.arm.get("value") is False:
                # azure-cli builds the filter with bool(text): any non-empty text, "false" included, becomes true.
                raise FilterError("az eventgrid reads a BoolEquals value with Python's bool(), so 'false' would "
                                  "become true; deploy this filter as ARM JSON (--format arm, as infra/ does)",
                                  f"advancedFilters[{a.index}]")
            args += ["--advanced-filter", a.key, a.operator, *_az_values(a.arm)]
        return args

    def __repr__(self) -> str:
        return f"SubscriptionFilter.from_dict({self.to_arm()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubscriptionFilter) and self.to_arm() == other.to_arm()

    def __hash__(self) -> int:
        return hash(repr(self))


def _az_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _az_values(arm: Mapping[str, Any]) -> list[str]:
    if "value" in arm:
        return [_az_scalar(arm["value"])]
    if arm["operatorType"] in _RANGE:
        return [f"{_az_scalar(lo)},{_az_scalar(hi)}" for lo, hi in arm.get("values", [])]
    return [_az_scalar(v) for v in arm.get("values", [])]

