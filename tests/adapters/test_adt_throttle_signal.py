"""The ADT adapter tells the write pacer about every 429 with its Retry-After (shared/adapters/twins/adt.py
ThrottleListener), including the ones azure-core retries itself, and a 429 past the retry budget is ``Throttled``."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from shared.adapters.twins.adt import RETRY_SETTINGS, AdtTwinStore, CountingPolicy, ThrottleListener, retry_policy
from shared.twins.write_pacer import Throttled
from tests.support.fault_transport import FaultTransport, throttle

MODEL = "dtmi:twinbridge:IoTDevice;1"


class FakeCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


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
