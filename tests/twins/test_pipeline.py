"""The whole pipeline over the embedded adapters: ordering, duplication, batching, bad input, policies."""

import random

import orjson
import pytest

from shared.errors import Code
from shared.outcome import Outcome
from tests.support import event_factory as factory
from tests.support.fixtures import SAMPLE_NAMES, invalid_cases, load_event
from tests.support.rig import CATALOG, NetworkedGraph, rig
from tests.support.streams import fleet_stream


def run(events, batch_size, **config):
    r = rig(config)
    for i in range(0, len(events), batch_size):
        r.pipeline.process(events[i:i + batch_size])
    return r


@pytest.mark.parametrize("batch_size", [1, 100])
def test_in_order_shuffled_and_doubled_streams_give_the_same_twins(batch_size):
    stream = fleet_stream()
    expected = run(stream, batch_size).user_twins()
    assert len(expected) == 7 and "dev-000" not in expected  # created 8, deleted one
    shuffled = stream[:]
    random.Random(3).shuffle(shuffled)
    doubled = [e for e in stream for _ in range(2)]
    random.Random(4).shuffle(doubled)
    assert run(shuffled, batch_size).user_twins() == expected
    assert run(doubled, batch_size).user_twins() == expected


def test_twins_show_the_latest_values_of_the_stream():
    stream = fleet_stream(devices=3, steps=20)
    twins = run(stream, 100).user_twins()
    for device, twin in twins.items():
        last_conn = [e for e in stream if e["eventType"].endswith(("DeviceConnected", "DeviceDisconnected"))
                     and e["data"].get("deviceId") == device]
        if last_conn:
            assert twin["connectionState"] == ("Connected" if last_conn[-1]["eventType"].endswith(".DeviceConnected")
                                               else "Disconnected")
        telemetry = [e for e in stream if e["eventType"].endswith("Telemetry") and e["subject"] == f"devices/{device}"]
        last = telemetry[-1]["data"]["body"]
        if isinstance(last, dict):
            assert twin["temperature"] == last["temperature"]


def test_redelivered_batch_writes_nothing():
    stream = fleet_stream(devices=4, steps=5)
    r = rig()
    first = r.pipeline.process(stream)
    # One create per device with its telemetry and connection state coalesced in; dev-000 is created and deleted
    # within the batch, so it is never written at all.
    assert first.twin_writes == 3
    again = r.pipeline.process(stream)
    assert again.twin_writes == 0
    assert again.counts()["applied"] == 0
    assert again.counts()["duplicate"] + again.counts()["stale"] == len(stream)


def test_one_patch_per_twin_per_batch():
    r = rig()
    r.pipeline.process([factory.lifecycle(f"d{i}") for i in range(10)])
    batch = [factory.telemetry(f"d{n % 10}", {"temperature": float(n)}, second=n, event_id=f"e{n}")
             for n in range(1, 201)]
    report = r.pipeline.process(batch)
    assert report.twin_writes == 10 and report.counts()["applied"] == 200
    assert r.twins.calls["patch"] == 10


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_every_sample_event_is_processed(schema):
    r = rig()
    report = r.pipeline.process([load_event(n, schema) for n in SAMPLE_NAMES])
    assert report.counts()["quarantined"] == 0, report.results
    # The samples' device is deleted in January 2018 but connects in June and sends telemetry in 2019: it exists.
    twins = r.user_twins()
    assert set(twins) == {"LogicAppTestDevice", "LogicAppTestDevice~tempSensor"}
    assert twins["LogicAppTestDevice"]["temperature"] == 22.25  # the base64 message, enqueued last


def test_mixed_stream_applies_every_valid_event_and_quarantines_each_bad_one():
    cases = invalid_cases()
    oversize = factory.telemetry("big", {"temperature": 1.0, "status": "x" * 1_100_000})
    bad = [event for _, _, event in cases] + [oversize]
    expected_codes = [code for _, code, _ in cases] + ["EVENT_TOO_LARGE"]
    good = fleet_stream(devices=3, steps=4)
    mixed = good + bad
    random.Random(5).shuffle(mixed)
    r = rig()
    report = r.pipeline.process(mixed)
    by_id = {id(e): res for e, res in zip(mixed, report.results, strict=True)}
    assert [by_id[id(e)].code for e in bad] == expected_codes
    assert all(by_id[id(e)].outcome is Outcome.QUARANTINED for e in bad)
    assert all(by_id[id(e)].outcome is not Outcome.QUARANTINED for e in good)
    assert len(r.quarantine) == len(bad)
    assert r.user_twins() == run(good, 100).user_twins()
    for record in r.quarantine:
        assert record.code and record.excerpt and len(record.excerpt) <= 512
        assert record.event is not None  # kept for replay


def test_quarantine_records_have_paths_and_hide_payloads():
    raw = load_event("device_telemetry")
    raw["data"]["systemProperties"].pop("iothub-enqueuedtime")
    raw["data"]["body"]["secret"] = "s3cr3t-value"
    r = rig()
    result = r.pipeline.process([raw]).results[0]
    assert (result.code, result.path) == ("SCHEMA_INVALID", "data.systemProperties.iothub-enqueuedtime")
    record = next(iter(r.quarantine))
    assert "s3cr3t-value" not in record.excerpt and record.problems[0]["path"] == result.path


def test_duplicate_ids_in_one_batch():
    event = factory.telemetry("d1", {"temperature": 3.0})
    report = rig().pipeline.process([event, orjson.loads(orjson.dumps(event))])
    assert [r.outcome for r in report.results] == [Outcome.APPLIED, Outcome.DUPLICATE]


def test_missing_twin_policy_quarantine_and_retry():
    telemetry = factory.telemetry("ghost", {"temperature": 1.0}, second=5)
    q = rig({"missing_twin": "quarantine"})
    assert q.pipeline.process([telemetry]).results[0].code == Code.TWIN_NOT_FOUND
    assert q.user_twins() == {}
    # With the DeviceCreated in the same batch (even after it), the twin is created and the telemetry applied.
    both = q.pipeline.process([factory.telemetry("ghost2", {"temperature": 2.0}, second=5),
                               factory.lifecycle("ghost2", second=1)])
    assert [res.outcome for res in both.results] == [Outcome.APPLIED, Outcome.APPLIED]
    assert q.user_twins()["ghost2"]["temperature"] == 2.0

    r = rig({"missing_twin": "retry"})
    report = r.pipeline.process([telemetry])
    assert report.results[0].outcome is Outcome.RETRY and report.results[0].code == Code.TWIN_NOT_READY
    with pytest.raises(Exception, match="redelivered"):
        report.raise_if_transient()
    r.pipeline.process([factory.lifecycle("ghost", second=1)])
    assert r.pipeline.process([telemetry]).results[0].outcome is Outcome.APPLIED
    assert r.user_twins()["ghost"]["temperature"] == 1.0


def test_twin_rejection_quarantines_and_reverts_the_shadow():
    r = rig({"twin": {"device_model": "dtmi:custom:NotUploaded;1"}})  # the graph refuses unknown models, as ADT
    report = r.pipeline.process([factory.telemetry("d1", {"temperature": 1.0})])
    assert report.results[0].code == Code.TWIN_REJECTED
    assert r.state.load("d1")[0].device_fields() == {}
    assert r.user_twins() == {}


def test_an_integer_json_cannot_carry_is_quarantined_not_a_crash():
    event = factory.telemetry("d1", {"temperature": 1.0})
    event["data"]["body"]["huge"] = 2**70
    report = rig().pipeline.process([event, factory.telemetry("d2", {"temperature": 2.0})])
    assert [(r.code, r.path) for r in report.results] == [("UNSUPPORTED_VALUE", "data.body.huge"), (None, "")]


@pytest.mark.parametrize("policy", ["retry", "quarantine"])
def test_policies_do_not_override_the_tombstone(policy):
    r = rig({"missing_twin": policy})
    r.pipeline.process([factory.lifecycle("d1", second=1), factory.lifecycle("d1", created=False, second=10)])
    late = r.pipeline.process([factory.telemetry("d1", {"temperature": 1.0}, second=5)])  # from before the deletion
    assert late.results[0].outcome is Outcome.STALE
    after = r.pipeline.process([factory.telemetry("d1", {"temperature": 2.0}, second=20)])  # deleted device talks
    assert after.results[0].outcome is Outcome.QUARANTINED and after.results[0].code == Code.TWIN_NOT_FOUND


def test_a_twin_id_the_service_refuses_quarantines_its_events_only(monkeypatch):
    from shared.errors import TwinRejected

    r = rig()
    real_get = r.twins.get_twin

    def get(twin_id):
        if twin_id == "bad":
            raise TwinRejected("InvalidArgument", "The digital twin id is invalid.")
        return real_get(twin_id)

    monkeypatch.setattr(r.twins, "get_twin", get)
    report = r.pipeline.process([factory.telemetry("bad", {"temperature": 1.0}),
                                 factory.telemetry("good", {"temperature": 2.0})])
    assert [(res.outcome, res.code) for res in report.results] == [(Outcome.QUARANTINED, "TWIN_REJECTED"),
                                                                    (Outcome.APPLIED, None)]


@pytest.mark.parametrize("order", ["separate batches", "one batch", "re-create first"])
def test_delete_and_re_create_give_the_same_twin_in_any_batching(order):
    before = [factory.lifecycle("d1", second=1), factory.telemetry("d1", {"temperature": 21.5}, second=2),
              factory.connection("d1", 1, second=3)]
    delete = factory.lifecycle("d1", created=False, second=10, version=2)
    create = factory.lifecycle("d1", second=20, version=3)
    r = rig()
    r.pipeline.process(before)
    if order == "separate batches":
        r.pipeline.process([delete])
        r.pipeline.process([create])
    elif order == "one batch":
        r.pipeline.process([delete, create])
    else:
        r.pipeline.process([create])
        r.pipeline.process([delete])
    assert r.user_twins() == {"d1": {"$model": "dtmi:twinbridge:IoTDevice;1"}}


def test_a_twin_too_big_for_one_request_is_created_then_patched():
    r = rig({"limits": {"max_patch_bytes": 200}})
    r.pipeline.process([factory.telemetry("d1", {"temperature": 1.5, "humidity": 40, "status": "x" * 150})])
    assert r.user_twins()["d1"] == {"$model": "dtmi:twinbridge:IoTDevice;1", "temperature": 1.5, "humidity": 40,
                                    "status": "x" * 150}
    assert r.twins.calls["create"] == 1 and r.twins.calls["patch"] >= 2


def test_helper_threads_only_where_calls_wait_on_io():
    # In-process stores: the calling thread does all the work (threads would only take turns at the GIL).
    assert rig().pipeline._helpers == 0
    # A remote twin store (ADT): up to max_concurrency twins in flight, the calling thread being one of them.
    remote = rig(twins=NetworkedGraph(CATALOG)).pipeline
    assert remote._helpers == remote.max_concurrency - 1 > 0
