"""The HTTP door with real func.HttpRequest objects whose bodies azure-eventgrid serialised."""

from __future__ import annotations

import azure.functions as func
import orjson
import pytest

from functions.eventgrid_webhook import eventgrid_webhook, handle
from shared.errors import Code
from shared.settings.doors import DoorSettings
from tests.functions.helpers import as_cloudevent_wire, as_eventgrid_wire, body_of, post, user_twins
from tests.support import event_factory as factory
from tests.support.rig import make_app

DEVICES = 50


def mixed_events(devices: int = DEVICES) -> list[dict]:
    """10 events per device: created, connected, disconnected (higher sequence), 7 telemetry messages."""
    events = []
    for d in range(devices):
        device = f"dev-{d:03d}"
        events.append(factory.lifecycle(device, second=1))
        events.append(factory.connection(device, 2 * d + 1, connected=True, second=2))
        events.append(factory.connection(device, 2 * d + 2, connected=False, second=3))
        for i in range(7):
            events.append(factory.telemetry(device, {"temperature": 20.0 + i, "humidity": 40.0 + d},
                                            second=4 + i, encoding="base64" if i % 3 == 0 else "json"))
    return events


def validation_request(code: str = "512d38b6-c7b8-40c8-89fe-f46f9e9622b6") -> func.HttpRequest:
    event = {"id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66", "topic": "/subscriptions/x/resourceGroups/rg/providers/"
             "Microsoft.Devices/IotHubs/hub", "subject": "",
             "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
             "eventTime": "2026-11-23T10:00:00.0000000Z", "dataVersion": "2", "metadataVersion": "1",
             "data": {"validationCode": code, "validationUrl": "https://rp-westus.eventgrid.azure.net:553/x"}}
    return post(orjson.dumps([event]), {"aeg-event-type": "SubscriptionValidation"})


def test_validation_handshake_echoes_the_code(install):
    install(make_app())
    response = eventgrid_webhook(validation_request("CODE-123"))
    assert response.status_code == 200
    assert body_of(response) == {"validationResponse": "CODE-123"}


def test_validation_refused_for_a_subscription_not_on_the_allow_list(install):
    install(make_app(doors=DoorSettings(webhook_subscriptions=("other-sub",))))
    response = eventgrid_webhook(validation_request())
    assert response.status_code == 403
    assert body_of(response)["error"]["code"] == "SUBSCRIPTION_NOT_ALLOWED"


def test_allow_list_is_case_insensitive_and_lets_listed_subscriptions_in(install):
    install(make_app(doors=DoorSettings(webhook_subscriptions=("twinbridge-sub",))))
    assert eventgrid_webhook(validation_request()).status_code == 200


def test_options_grants_the_requested_origin(install):
    install(make_app())
    request = func.HttpRequest("OPTIONS", "https://app.azurewebsites.net/api/eventgrid", body=b"",
                               headers={"WebHook-Request-Origin": "eventgrid.azure.net", "WebHook-Request-Rate": "120"})
    response = eventgrid_webhook(request)
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert response.headers["WebHook-Allowed-Rate"] == "*"
    assert response.headers["Allow"] == "POST"


def test_options_without_origin_is_not_a_handshake(install):
    install(make_app())
    request = func.HttpRequest("OPTIONS", "https://app.azurewebsites.net/api/eventgrid", body=b"")
    assert eventgrid_webhook(request).status_code == 400


def test_subscription_deletion_is_acknowledged_without_processing(install):
    app = make_app()
    install(app)
    body = orjson.dumps([as_eventgrid_wire(factory.lifecycle("dev-x"))])
    response = eventgrid_webhook(post(body, {"aeg-event-type": "SubscriptionDeletion"}))
    assert response.status_code == 200
    assert user_twins(app.twins) == {}


@pytest.mark.parametrize("wire", ["eventgrid", "cloudevents-batch"])
def test_a_batch_of_500_mixed_events_is_one_batch_with_coalesced_writes(install, wire):
    events = mixed_events()
    assert len(events) == 500
    if wire == "eventgrid":
        body, content_type = orjson.dumps([as_eventgrid_wire(e) for e in events]), "application/json"
    else:
        body = orjson.dumps([as_cloudevent_wire(e) for e in events])
        content_type = "application/cloudevents-batch+json; charset=utf-8"
    app = make_app()
    install(app)
    response = eventgrid_webhook(post(body, content_type=content_type))
    summary = body_of(response)
    assert response.status_code == 200, summary
    assert summary["events"] == 500
    assert summary["outcomes"] == {"applied": 500}
    # One create per twin: every device's 10 events became one document.
    assert summary["twinWrites"] == DEVICES
    assert app.twins.calls["create"] == DEVICES and app.twins.calls["patch"] == 0
    twins = user_twins(app.twins)
    assert twins["dev-007"] == {"$model": "dtmi:twinbridge:IoTDevice;1", "connectionState": "Disconnected",
                                "temperature": 26.0, "humidity": 47.0}

    # The same events one request each (what the Event Grid trigger does) for comparison.
    single = make_app()
    install(single)
    writes = 0
    for event in events:
        one = as_eventgrid_wire(event) if wire == "eventgrid" else as_cloudevent_wire(event)
        ct = "application/json" if wire == "eventgrid" else "application/cloudevents+json"
        reply = eventgrid_webhook(post(orjson.dumps(one), content_type=ct))
        assert reply.status_code == 200
        writes += body_of(reply)["twinWrites"]
    assert user_twins(single.twins) == twins
    print(f"\n[{wire}] 500 events over {DEVICES} twins: {summary['twinWrites']} twin writes as one batch, "
          f"{writes} one request per event")
    assert writes > 5 * summary["twinWrites"]


def test_single_cloudevent_is_accepted(install):
    app = make_app()
    install(app)
    body = orjson.dumps(as_cloudevent_wire(factory.telemetry("dev-ce", {"temperature": 5.5})))
    response = eventgrid_webhook(post(body, content_type="application/cloudevents+json; charset=utf-8"))
    assert response.status_code == 200
    assert user_twins(app.twins)["dev-ce"]["temperature"] == 5.5


@pytest.mark.parametrize("body, code", [
    (b"{not json", "MALFORMED_JSON"),
    (b"", "MALFORMED_JSON"),
    (b"42", "NOT_EVENTS"),
    (b"[1, 2, 3]", "NOT_EVENTS"),
    (b"[]", "NOT_EVENTS"),
    (b'"an event"', "NOT_EVENTS"),
])
def test_bodies_that_are_not_events_get_400(install, body, code):
    install(make_app())
    response = eventgrid_webhook(post(body))
    assert response.status_code == 400
    assert body_of(response)["error"]["code"] == code


def test_unknown_event_type_header_gets_400(install):
    install(make_app())
    assert eventgrid_webhook(post(b"[]", {"aeg-event-type": "Surprise"})).status_code == 400


def test_bad_events_inside_a_good_array_are_quarantined_and_the_rest_applied(install):
    app = make_app()
    install(app)
    foreign = dict(factory.telemetry("dev-f", {"temperature": 1.0}), topic="/subscriptions/x/other")
    body = orjson.dumps([as_eventgrid_wire(factory.telemetry("dev-ok", {"temperature": 1.5})), "junk",
                         as_eventgrid_wire(foreign)])
    response = eventgrid_webhook(post(body))
    summary = body_of(response)
    assert response.status_code == 200
    assert summary["outcomes"] == {"applied": 1, "quarantined": 2}
    assert [q["code"] for q in summary["quarantined"]] == [Code.NOT_AN_EVENT, Code.TOPIC_NOT_ALLOWED]
    assert list(user_twins(app.twins)) == ["dev-ok"]
    assert len(app.quarantine) == 2


def test_oversize_body_gets_413(install):
    install(make_app())
    big = factory.telemetry("dev-big", {"temperature": 1.0, "status": "x" * 1_100_000})
    response = eventgrid_webhook(post(orjson.dumps([big])))
    assert response.status_code == 413
    assert body_of(response)["error"]["code"] == "BODY_TOO_LARGE"


def test_transient_adt_failure_gives_503_and_the_resent_batch_converges(install, fake_adt, adt_store):
    events = mixed_events(10)
    body = orjson.dumps([as_eventgrid_wire(e) for e in events])
    app = make_app(twins=adt_store)
    install(app)
    # The 4th twin creation fails past the retry budget (1 try + 2 retries): that twin's events must come again.
    calls = {"n": 0}
    original = fake_adt._route

    def flaky(method, path, headers, body_):
        if method == "PUT" and path.startswith("/digitaltwins/dev-003"):
            calls["n"] += 1
            if calls["n"] <= 3:
                return 503, {}, orjson.dumps({"error": {"code": "ServiceUnavailable", "message": "busy"}})
        return original(method, path, headers, body_)

    fake_adt._route = flaky
    first = eventgrid_webhook(post(body))
    summary = body_of(first)
    assert first.status_code == 503, summary
    assert first.headers["Retry-After"] == "30"
    assert summary["outcomes"] == {"applied": 90, "retry": 10}
    assert summary["retry"] == [Code.ADT_UNAVAILABLE]
    assert "dev-003" not in user_twins(fake_adt.graph)

    writes_before = len(fake_adt.writes())
    second = eventgrid_webhook(post(body))  # Event Grid resends the whole batch
    summary2 = body_of(second)
    assert second.status_code == 200, summary2
    # Nothing is applied twice: the shadow of dev-003 was committed before its twin write failed, so its events
    # are duplicates (or stale: superseded within the batch) too; the write that failed is the only one made now.
    assert set(summary2["outcomes"]) <= {"duplicate", "stale"}
    assert sum(summary2["outcomes"].values()) == 100
    assert summary2["twinWrites"] == 1
    assert len(fake_adt.writes()) - writes_before == 1

    reference = make_app()
    install(reference)
    assert handle(post(body)).status_code == 200
    assert user_twins(fake_adt.graph) == user_twins(reference.twins)
