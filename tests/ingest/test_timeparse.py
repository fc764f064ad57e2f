from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ingest.timeparse import TICKS_PER_SECOND, _parse_general, parse_ticks, ticks_to_iso


def test_seven_fractional_digits_are_exact():
    a = parse_ticks("2018-01-02T19:17:44.4383997Z")
    b = parse_ticks("2018-01-02T19:17:44.4383998Z")
    assert b - a == 1


def test_fraction_lengths_compare_as_numbers_not_strings():
    # As strings "…30.48Z" > "…30.4799999Z" is true, but so is "…30.5Z" > "…30.48Z"; only numbers are safe.
    assert parse_ticks("2019-01-07T20:58:30.5Z") > parse_ticks("2019-01-07T20:58:30.48Z")
    assert parse_ticks("2019-01-07T20:58:30.48Z") == parse_ticks("2019-01-07T20:58:30.4800000Z")


def test_no_zone_is_utc_and_offsets_are_applied():
    assert parse_ticks("0001-01-01T00:00:00") == 0
    assert parse_ticks("2026-11-23T10:00:00+01:00") == parse_ticks("2026-11-23T09:00:00Z")
    assert parse_ticks("2026-11-23T10:00:00Z") - parse_ticks("2026-11-23T09:59:59Z") == TICKS_PER_SECOND


def test_round_trip():
    assert ticks_to_iso(parse_ticks("2026-11-23T09:00:00.1234567Z")) == "2026-11-23T09:00:00.1234567Z"


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-23", ""])
def test_rejects_what_is_not_a_date_time(text):
    with pytest.raises(ValueError):
        parse_ticks(text)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), st.integers(0, 9),
       st.sampled_from([".", ",", ""]))
def test_the_cached_fast_path_agrees_with_the_general_parser(moment, digits, separator):
    whole = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
             f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")
    fraction = f"{moment.microsecond:06d}{moment.microsecond % 1000:03d}"[:digits]
    text = whole + (separator + fraction if digits and separator else "") + "Z"
    expected = _parse_general(text) if separator != "," else parse_ticks(text)
    assert parse_ticks(text) == expected and parse_ticks(text) == expected  # second call: the cached second


def test_the_fast_path_refuses_what_the_general_parser_refuses():
    parse_ticks("2026-11-23T09:00:00Z")  # the second is now cached
    for text in ["2026-11-23T09:00:00.Z", "2026-11-23T09:00:00.１２Z", "2026-11-23T09:00:00.+1Z",
                 "2026-11-23T09:00:00.1234567890Z", "2026-11-23T09:00:00._1Z"]:
        with pytest.raises(ValueError):
            parse_ticks(text)
