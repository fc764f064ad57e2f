"""ADT call, throttle and retry counters, through the real DigitalTwinsClient and azure-core retry policy."""

from __future__ import annotations

import orjson
import pytest
import responses

from shared.adapters.twins.adt import RETRY_SETTINGS, AdtTwinStore, CountingPolicy
from shared.errors import TransientError
from shared.observability import ADT_CALLS, ADT_RETRIED, ADT_THROTTLED, METRICS, Metrics
from tests.support.fake_adt import FakeCredential

URL = "https://counting.api.wus2.digitaltwins.azure.net"
TWIN = {"$dtId": "dev-1", "$etag": 'W/"1"', "$metadata": {"$model": "dtmi:twinbridge:IoTDevice;1"}}


def _throttled() -> dict[str, object]:
    return {"status": 429, "headers": {"Retry-After": "0"},
            "body": orjson.dumps({"error": {"code": "TooManyRequests", "message": "slow down"}}),
            "content_type": "application/json"}


@responses.activate
def test_one_call_throttled_once_then_retried() -> None:
    metrics = Metrics()
    store = AdtTwinStore.from_url(URL, FakeCredential(), per_retry_policies=[CountingPolicy(metrics)])
    responses.add(responses.GET, f"{URL}/digitaltwins/dev-1", **_throttled())
    responses.add(responses.GET, f"{URL}/digitaltwins/dev-1", json=TWIN, headers={"ETag": 'W/"1"'})
    assert store.get_twin("dev-1") is not None
    assert store.get_twin("dev-1") is not None
    assert (metrics.total(ADT_CALLS), metrics.total(ADT_THROTTLED), metrics.total(ADT_RETRIED)) == (2, 1, 1)
    assert len(responses.calls) == 3


@responses.activate
def test_throttled_past_the_budget_counts_every_attempt() -> None:
    metrics = Metrics()
    store = AdtTwinStore.from_url(URL, FakeCredential(), per_retry_policies=[CountingPolicy(metrics)])
    retries = RETRY_SETTINGS["retry_total"]
    for _ in range(retries + 1):
        responses.add(responses.GET, f"{URL}/digitaltwins/dev-1", **_throttled())
    with pytest.raises(TransientError) as caught:
        store.get_twin("dev-1")
    assert caught.value.code == "ADT_THROTTLED"
    assert (metrics.total(ADT_CALLS), metrics.total(ADT_THROTTLED), metrics.total(ADT_RETRIED)) == \
        (1, retries + 1, retries)
    assert len(responses.calls) == retries + 1


@responses.activate
def test_the_default_store_counts_into_the_process_counters() -> None:
    before = METRICS.total(ADT_CALLS)
    store = AdtTwinStore.from_url(URL, FakeCredential())
    responses.add(responses.GET, f"{URL}/digitaltwins/missing", status=404,
                  json={"error": {"code": "DigitalTwinNotFound", "message": "no"}})
    assert store.get_twin("missing") is None
    assert METRICS.total(ADT_CALLS) == before + 1
