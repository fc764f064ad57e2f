"""shared/ingest/json_elements.py: integers beyond 64 bits stay exact (orjson would round them to floats)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ingest.json_elements import iter_elements, loads, parse_element


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**40, -(10**30), [1, {"a": 2**70}]])
def test_integers_beyond_64_bits_stay_exact(value: object) -> None:
    raw = json.dumps({"x": value}).encode()
    exact = repr({"x": value})  # repr: 2**64 == float(2**64) in Python, but a float is not what was sent
    assert repr(orjson.loads(raw)) != exact  # what orjson alone gives: a rounded float
    assert repr(loads(raw)) == exact
    assert repr(parse_element(raw)) == exact
    assert repr([v for v, _ in iter_elements(b"[" + raw + b", " + raw + b"]")]) == f"[{exact}, {exact}]"
    assert repr([v for v, _ in iter_elements(raw + b"\n")]) == f"[{exact}]"  # JSON Lines (replay)


def test_digits_inside_strings_and_64_bit_integers_read_as_orjson_reads_them() -> None:
    raw = b'{"sequenceNumber": "000000000000000001D4132452F67CE200000002000000000000000000000001", ' \
          b'"n": 18446744073709551615, "m": -9223372036854775808, "t": "a:12345678901234567890"}'
    assert loads(raw) == orjson.loads(raw) == json.loads(raw)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=20))
def test_reads_what_pythons_json_reads(value: object) -> None:
    for raw in (json.dumps(value).encode(), json.dumps(value, indent=2).encode()):
        assert repr(loads(raw)) == repr(json.loads(raw))
