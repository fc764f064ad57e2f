"""The ADT adapter tells the write pacer about every 429 with its Retry-After (shared/adapters/twins/adt.py
ThrottleListener), including the ones azure-core retries itself, and a 429 past the retry budget is ``Throttled``."""

from __future__ import annotations

import email.utils
import time

import pytest

from shared.adapters.twins.adt import (
    RETRY_SETTINGS,
    AdtTwinStore,
    CountingPolicy,
    ThrottleListener,
    retry_after_seconds,
    retry_policy,
)
from shared.twins.write_pacer import Throttled
from tests.support.fake_adt import FakeCredential
from tests.support.fault_transport import FaultTransport, throttle

MODEL = "dtmi:twinbridge:IoTDevice;1"


def store(transport: FaultTransport, heard: list[float | None]) -> AdtTwinStore:
    return AdtTwinStore.from_url("https://adt.test", FakeCredential(), transport=transport,
                                 retry_policy=retry_policy(clock=transport.clock),
                                 per_retry_policies=[CountingPolicy(), ThrottleListener(heard.append)],
                                 read_timeout=RETRY_SETTINGS["read_timeout"])


def test_every_429_is_heard_with_its_retry_after_even_when_the_sdk_retries_it() -> None:
    transport = FaultTransport([throttle(1.5, method="GET")])
    transport.seed("t1", MODEL, temperature=1)
    heard: list[float | None] = []
    assert store(transport, heard).get_twin("t1") is not None  # azure-core retried after the 429
    assert heard == [1.5]


def test_a_429_past_the_retry_budget_is_throttled_with_the_wait_it_asked_for() -> None:
    transport = FaultTransport([throttle(2.0, method="GET", times=10)])
    transport.seed("t1", MODEL, temperature=1)
    heard: list[float | None] = []
    with pytest.raises(Throttled) as raised:
        store(transport, heard).get_twin("t1")
    assert raised.value.retry_after == 2.0
    assert heard and set(heard) == {2.0}


class _Answer:
    def __init__(self, headers: dict[str, str] | None) -> None:
        self.headers = headers
        self.request = None


@pytest.mark.parametrize(("headers", "wait"), [
    ({"Retry-After": "3"}, 3.0),
    ({"retry-after-ms": "250"}, 0.25),
    ({"x-ms-retry-after-ms": "1500"}, 1.5),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: no wait, never negative
    ({"Retry-After": "soon"}, None),  # unreadable: no instruction
    ({}, None),
    (None, None),
])
def test_the_wait_a_429_asks_for_is_read_as_azure_core_reads_it(headers: dict[str, str] | None,
                                                                 wait: float | None) -> None:
    assert retry_after_seconds(_Answer(headers)) == wait


def test_a_retry_after_date_in_the_future_is_the_seconds_until_then() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    wait = retry_after_seconds(_Answer({"Retry-After": when}))
    assert wait is not None and 28 <= wait <= 30
