"""The fleet and the local Event Grid publisher, against `responses` (no server needed)."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses

from shared.filters.event_grid import SubscriptionFilter
from twinbridge.simulator.expect import Expectation
from twinbridge.simulator.fleet import Fleet
from twinbridge.simulator.publisher import Chaos, LocalEventGridPublisher, RetryPolicy, event_to_wire

URL = "http://127.0.0.1:9/runtime/webhooks/eventgrid?functionName=ingest_iothub_events"
CONNECTION = ("Microsoft.Devices.DeviceConnected", "Microsoft.Devices.DeviceDisconnected")


def fixed_clock() -> Any:
    moments = iter(datetime(2026, 11, 23, 10, tzinfo=UTC) + timedelta(milliseconds=7 * i) for i in range(10**6))
    return lambda: next(moments)


def wire_events(seed: int, count: int = 300, schema: str = "eventgrid") -> list[dict[str, Any]]:
    fleet = Fleet(8, seed=seed, faulty=0.05, clock=fixed_clock())
    return [event_to_wire(e, schema) for e in fleet.events(count)]


def test_same_seed_same_events_and_another_seed_differs() -> None:
    assert wire_events(3) == wire_events(3)
    assert wire_events(3) != wire_events(4)


def test_devices_start_with_created_and_sequence_numbers_increase() -> None:
    events = wire_events(5, 600)
    first: dict[str, str] = {}
    sequences: dict[str, list[int]] = {}
    for event in events:
        device = event["subject"].removeprefix("devices/")
        first.setdefault(device, event["eventType"])
        if event["eventType"] in CONNECTION:
            number = event["data"]["deviceConnectionStateEventInfo"]["sequenceNumber"]
            assert len(number) == 64 and int(number, 16) > 0
            sequences.setdefault(device, []).append(int(number, 16))
    assert set(first.values()) == {"Microsoft.Devices.DeviceCreated"}
    assert sequences and all(s == sorted(s) and len(set(s)) == len(s) for s in sequences.values())
    assert any(len(s) > 2 for s in sequences.values())  # devices flap, not just connect once


def test_telemetry_mixes_json_base64_and_enrichments() -> None:
    telemetry = [e["data"] for e in wire_events(6, 600) if e["eventType"].endswith("DeviceTelemetry")]
    typed = [d for d in telemetry if d["systemProperties"].get("iothub-content-type") == "application/json"]
    untyped = [d for d in telemetry if "iothub-content-type" not in d["systemProperties"]]
    assert typed and untyped
    assert all(isinstance(d["body"], dict) for d in typed)
    assert all(isinstance(d["body"], str) for d in untyped)  # base64, as IoT Hub sends it without a content type
    assert all({"building", "deviceType", "alert"} <= set(d["properties"]) for d in telemetry)
    fields = {k for d in typed for k in d["body"]}
    assert {"temperature", "humidity", "batteryLevel"} <= fields


def test_cloudevents_schema_carries_the_same_event() -> None:
    eg, ce = wire_events(9, 20), wire_events(9, 20, "cloudevents")
    assert [e["id"] for e in eg] == [e["id"] for e in ce]
    assert ce[0]["specversion"] == "1.0" and ce[0]["type"] == eg[0]["eventType"] and ce[0]["source"] == eg[0]["topic"]


class Endpoint:
    """A fake webhook: answers from a script of status codes (then 202), records every delivery."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.deliveries: list[tuple[dict[str, str], Any]] = []
        self.lock = threading.Lock()

    def __call__(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.deliveries.append((dict(request.headers), orjson.loads(request.body)))
            status = self.statuses.pop(0) if self.statuses else 202
        return status, {}, b""

    @property
    def ids(self) -> list[str]:
        return [e["id"] for _, body in self.deliveries for e in (body if isinstance(body, list) else [body])]


def publish(publisher: LocalEventGridPublisher, fleet: Fleet, count: int) -> None:
    publisher.publish(fleet.events(count))
    assert publisher.drain(20)
    publisher.close()


@responses.activate
def test_batches_headers_and_expectation() -> None:
    endpoint = Endpoint()
    responses.add_callback(responses.POST, URL, callback=endpoint)
    fleet, expectation = Fleet(4, seed=1), Expectation()
    # One delivery worker: with several, batches leave in any order (the sizes are what this test is about).
    publisher = LocalEventGridPublisher(URL, max_events_per_batch=5, seed=1, linger=0, concurrency=1,
                                        on_delivered=lambda ids: [expectation.observe(i, fleet.effects[i])
                                                                  for i in ids])
    publish(publisher, fleet, 23)
    assert [len(body) for _, body in endpoint.deliveries] == [5, 5, 5, 5, 3]
    headers = endpoint.deliveries[0][0]
    assert headers["aeg-event-type"] == "Notification" and headers["aeg-delivery-count"] == "0"
    assert headers["aeg-subscription-name"] == "TWINBRIDGE-LOCAL"
    assert sorted(endpoint.ids) == sorted(fleet.effects)
    assert set(expectation.twins) == {d.device_id for d in fleet.devices}


@responses.activate
def test_subscription_filter_is_applied() -> None:
    endpoint = Endpoint()
    responses.add_callback(responses.POST, URL, callback=endpoint)
    only_connections = SubscriptionFilter.from_dict({"includedEventTypes": list(CONNECTION)})
    fleet = Fleet(5, seed=2)
    publisher = LocalEventGridPublisher(URL, subscription_filter=only_connections, seed=2)
    publish(publisher, fleet, 200)
    delivered = {fleet.effects[i].kind for i in endpoint.ids}
    assert delivered == {"connection"}
    assert publisher.stats.filtered == 200 - len(endpoint.ids) > 0


@responses.activate
def test_chaos_duplicates_and_reorders() -> None:
    endpoint = Endpoint()
    responses.add_callback(responses.POST, URL, callback=endpoint)
    fleet = Fleet(3, seed=3)
    events = fleet.events(40)
    publisher = LocalEventGridPublisher(URL, seed=3, concurrency=1, linger=0,
                                        chaos=Chaos(duplicate=1.0, reorder=1.0, delay=0.0, max_delay=0.05))
    publisher.publish(events)
    assert publisher.drain(20)
    publisher.close()
    assert sorted(endpoint.ids) == sorted([e.id for e in events] * 2)  # every delivery duplicated
    assert endpoint.ids[:40] != [e.id for e in events]  # not in publish order
    assert publisher.stats.duplicated == 40 and publisher.stats.reordered == 1


def test_retry_schedule_follows_event_grid() -> None:
    policy = RetryPolicy(time_scale=1.0, jitter=0.0)
    rng = random.Random(0)
    waits = [policy.wait(n, 500, rng) for n in range(1, 12)]
    assert waits == [10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 43200]
    assert policy.wait(1, 503, rng) == 30 and policy.wait(1, 408, rng) == 120
    assert RetryPolicy(time_scale=0.01, jitter=0.0).wait(2, 500, rng) == pytest.approx(0.3)


def dead_letters(folder: Path) -> list[dict[str, Any]]:
    return [r for f in sorted(folder.rglob("*.json")) for r in orjson.loads(f.read_bytes())]


@responses.activate
def test_failures_are_retried_then_dead_lettered(tmp_path: Path) -> None:
    endpoint = Endpoint([500] * 100)
    responses.add_callback(responses.POST, URL, callback=endpoint)
    fleet = Fleet(1, seed=4)
    publisher = LocalEventGridPublisher(URL, seed=4, deadletter_dir=tmp_path, subscription_name="sub-a",
                                        policy=RetryPolicy(max_attempts=4, time_scale=0.001))
    publish(publisher, fleet, 1)
    counts = [h["aeg-delivery-count"] for h, _ in endpoint.deliveries]
    assert counts == ["0", "1", "2", "3"]
    [record] = dead_letters(tmp_path / "sub-a")
    assert record["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    assert record["deliveryAttempts"] == 4 and record["lastHttpStatusCode"] == 500
    assert record["id"] == next(iter(fleet.effects)) and record["lastDeliveryOutcome"] == "GenericError"
    assert {"publishTime", "lastDeliveryAttemptTime"} <= set(record)


@responses.activate
@pytest.mark.parametrize("status", [400, 413])
def test_client_errors_are_never_retried(tmp_path: Path, status: int) -> None:
    endpoint = Endpoint([status])
    responses.add_callback(responses.POST, URL, callback=endpoint)
    publisher = LocalEventGridPublisher(URL, seed=5, deadletter_dir=tmp_path, policy=RetryPolicy(time_scale=0.001))
    publish(publisher, Fleet(1, seed=5), 1)
    assert len(endpoint.deliveries) == 1
    [record] = dead_letters(tmp_path)
    assert record["deliveryAttempts"] == 1 and record["lastHttpStatusCode"] == status


@responses.activate
def test_a_busy_endpoint_gets_the_event_later() -> None:
    endpoint = Endpoint([503, 500])
    responses.add_callback(responses.POST, URL, callback=endpoint)
    publisher = LocalEventGridPublisher(URL, seed=6, policy=RetryPolicy(time_scale=0.001))
    publish(publisher, Fleet(1, seed=6), 1)
    assert len(endpoint.deliveries) == 3
    assert publisher.stats.delivered == 1 and publisher.stats.retries == 2 and publisher.stats.dead_lettered == 0


def test_expectation_reports_every_difference() -> None:
    fleet, expectation = Fleet(2, seed=8, clock=fixed_clock()), Expectation()
    for event in fleet.events(60):
        expectation.observe(event.id, fleet.effects[event.id])
    twins = [{"$dtId": twin_id, **expected.properties()} for twin_id, expected in expectation.twins.items()]
    assert expectation.compare(twins) == []
    device = twins[0]["$dtId"]
    twins[0]["connectionState"] = "Sideways"
    twins.append({"$dtId": "stranger"})
    found = {(m.twin_id, m.field) for m in expectation.compare(twins)}
    assert found == {(device, "connectionState"), ("stranger", "$dtId")}


def test_retired_devices_send_a_late_deletion_and_nothing_more() -> None:
    fleet, expectation = Fleet(4, seed=5), Expectation()
    before = fleet.events(40)
    deletions = fleet.retire(2)
    after = fleet.events(20)
    assert [e.event_type for e in deletions] == ["Microsoft.Devices.DeviceDeleted"] * 2
    retired = {e.subject.split("/")[1] for e in deletions}
    assert not retired & {e.subject.split("/")[1] for e in after}
    for deletion in deletions:
        device = deletion.subject.split("/")[1]
        last = max(e.event_time for e in before if e.subject == deletion.subject)
        assert deletion.event_time > last, device
    # Delivered in any order, a deleted device's twin is expected gone, whatever of it arrives late.
    for event in [*deletions, *reversed(before), *after]:
        expectation.observe(event.id, fleet.effects[event.id])
    assert retired == expectation.deleted and not retired & set(expectation.twins)



def test_sequence_numbers_are_real_format_64_hex_digits_beyond_64_bits() -> None:
    # IoT Hub's are 256-bit numbers (Learn's sample ~2**200): the simulator must exercise what real hubs send.
    numbers = [event["data"]["deviceConnectionStateEventInfo"]["sequenceNumber"] for event in wire_events(5, 300)
               if event["eventType"] in CONNECTION]
    assert numbers and all(len(n) == 64 and int(n, 16) >= 2**64 for n in numbers)
