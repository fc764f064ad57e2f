"""HTTP-level behaviour of the ADT adapter through the real DigitalTwinsClient (azure-core retry policy included)."""

import pytest

from shared.errors import Code, TransientError, TwinConflict, TwinRejected
from tests.support import event_factory as factory
from tests.support.rig import rig

MODEL = "dtmi:twinbridge:IoTDevice;1"


def test_conditional_headers_are_sent_verbatim(adt_store, fake_adt):
    etag = adt_store.create_twin("t1", {"$metadata": {"$model": MODEL}})
    put = fake_adt.writes()[0]
    assert put.method == "PUT" and put.headers["If-None-Match"] == "*"
    adt_store.patch_twin("t1", [{"op": "add", "path": "/temperature", "value": 1.0}], etag)
    patch = fake_adt.writes()[1]
    assert patch.headers["If-Match"] == etag  # the weak etag W/"…" goes out unquoted, exactly as read
    assert patch.headers["Content-Type"] == "application/json-patch+json"
    assert patch.headers["Authorization"] == "Bearer fake-token"


def test_429_honours_retry_after_then_succeeds(adt_store, fake_adt):
    etag = adt_store.create_twin("t1", {"$metadata": {"$model": MODEL}})
    fake_adt.fail_next("PATCH", 429, times=2, headers={"Retry-After": "3"}, code="TooManyRequests")
    adt_store.patch_twin("t1", [{"op": "add", "path": "/temperature", "value": 1.0}], etag)
    assert adt_store.sleeps[:2] == [3, 3]
    assert adt_store.get_twin("t1")["temperature"] == 1.0


def test_429_past_the_budget_is_transient(adt_store, fake_adt):
    etag = adt_store.create_twin("t1", {"$metadata": {"$model": MODEL}})
    fake_adt.fail_next("PATCH", 429, times=10, headers={"Retry-After": "2"})
    with pytest.raises(TransientError) as caught:
        adt_store.patch_twin("t1", [{"op": "add", "path": "/temperature", "value": 1.0}], etag)
    assert caught.value.code is Code.ADT_THROTTLED
    assert len(adt_store.sleeps) == 3 and sum(adt_store.sleeps) <= 20  # within the invocation budget


def test_503_is_retried_then_transient(adt_store, fake_adt):
    fake_adt.fail_next("GET", 503, times=1)
    assert adt_store.get_twin("t1") is None  # one 503, retried, then the real 404
    fake_adt.fail_next("GET", 503, times=10)
    with pytest.raises(TransientError) as caught:
        adt_store.get_twin("t1")
    assert caught.value.code is Code.ADT_UNAVAILABLE


def test_412_and_400_translate_to_port_errors(adt_store, fake_adt):
    etag = adt_store.create_twin("t1", {"$metadata": {"$model": MODEL}})
    adt_store.patch_twin("t1", [{"op": "add", "path": "/temperature", "value": 1.0}], etag)
    with pytest.raises(TwinConflict):
        adt_store.patch_twin("t1", [{"op": "add", "path": "/humidity", "value": 1.0}], etag)
    with pytest.raises(TwinRejected) as caught:
        adt_store.patch_twin("t1", [{"op": "add", "path": "/nope", "value": 1.0}], "*")
    assert caught.value.code == "ValidationFailed"


def test_pipeline_over_the_adt_adapter_matches_the_embedded_graph(adt_store, fake_adt):
    from tests.support.streams import fleet_stream

    stream = fleet_stream(devices=3, steps=6)
    embedded = rig()
    embedded.pipeline.process(stream)
    over_adt = rig(twins=adt_store)
    over_adt.pipeline.process(stream)
    assert {t["$dtId"]: {k: v for k, v in t.items() if not k.startswith("$")} for t in fake_adt.graph.list_twins()} \
        == {k: {p: v for p, v in t.items() if p != "$model"} for k, t in embedded.user_twins().items()}
    assert all("If-Match" in r.headers for r in fake_adt.writes() if r.method == "PATCH")


def test_twin_race_412_is_resolved_by_re_reading(adt_store, fake_adt):
    """Another writer changes the twin between our read and our PATCH: we re-read and re-plan, never blind-write."""

    r = rig(twins=adt_store)
    r.pipeline.process([factory.lifecycle("d1"), factory.telemetry("d1", {"temperature": 1.0}, second=1)])
    other_etag = fake_adt.graph.get_twin("d1")["$etag"]
    real_get = adt_store.get_twin

    def racing_get(twin_id):
        twin = real_get(twin_id)
        if twin is not None and twin.get("humidity") is None:
            nonlocal other_etag
            other_etag = fake_adt.graph.patch_twin(twin_id, [{"op": "add", "path": "/humidity", "value": 50}],
                                                   other_etag)
        return twin

    adt_store.get_twin = racing_get
    report = r.pipeline.process([factory.telemetry("d1", {"temperature": 2.0}, second=2)])
    assert report.counts()["applied"] == 1
    twin = fake_adt.graph.get_twin("d1")
    assert (twin["temperature"], twin["humidity"]) == (2.0, 50)  # both writers' changes survive
    statuses = [r.method for r in fake_adt.writes()]
    assert statuses.count("PATCH") >= 2
