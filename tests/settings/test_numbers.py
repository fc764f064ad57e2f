"""Numeric settings are read one way (shared/settings/numbers.py) by the door and throughput settings."""

from __future__ import annotations

import pytest

from shared.settings.doors import DoorSettings
from shared.settings.numbers import integer_setting, number_setting
from shared.settings.throughput import GROUP_COMMIT_MAX_EVENTS, ThroughputSettings


def test_unset_or_blank_is_the_default_and_a_value_is_read() -> None:
    assert integer_setting({}, "N", 7) == 7
    assert integer_setting({"N": "  "}, "N", 7) == 7
    assert integer_setting({"N": " 12 "}, "N", 7) == 12
    assert number_setting({"X": "2.5"}, "X", 1.0) == 2.5


@pytest.mark.parametrize(("env", "message"), [
    ({"N": "ten"}, "N must be an integer, got 'ten'"),
    ({"N": "1.5"}, "N must be an integer, got '1.5'"),  # not truncated to 1
    ({"N": "0"}, "N must be at least 1, got 0"),
])
def test_an_integer_setting_refuses_what_is_not_an_integer_at_least_the_minimum(env: dict[str, str],
                                                                                message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        integer_setting(env, "N", 5, 1)


@pytest.mark.parametrize(("raw", "message"), [
    ("fast", "X must be a number, got 'fast'"),
    ("nan", "X must be a number, got 'nan'"),  # NaN is never below the minimum: it would pass unchecked
    ("inf", "X must be a number, got 'inf'"),
    ("0.05", "X must be at least 0.1, got 0.05"),
])
def test_a_number_setting_refuses_what_is_not_a_finite_number_at_least_the_minimum(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        number_setting({"X": raw}, "X", 1.0, 0.1)


def test_both_settings_groups_read_through_it() -> None:
    assert DoorSettings.from_env({"IOTHUB_STREAM_CHUNK": "64"}).stream_chunk_events == 64
    with pytest.raises(ValueError, match="IOTHUB_STREAM_CHUNK must be at least 1"):
        DoorSettings.from_env({"IOTHUB_STREAM_CHUNK": "0"})
    assert ThroughputSettings.from_env({}).group_commit_max_events == GROUP_COMMIT_MAX_EVENTS
    with pytest.raises(ValueError, match="TWINBRIDGE_GROUP_COMMIT_MAX_EVENTS must be an integer"):
        ThroughputSettings.from_env({"TWINBRIDGE_GROUP_COMMIT_MAX_EVENTS": "2.5"})
    with pytest.raises(ValueError, match="TWINBRIDGE_TWIN_WRITES_PER_SECOND must be a number"):
        ThroughputSettings.from_env({"TWINBRIDGE_TWIN_WRITES_PER_SECOND": "nan"})
