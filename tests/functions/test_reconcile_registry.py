"""The registry reconcile: real IoTHubRegistryManager over `responses`, the embedded twin graph, a fake clock."""

from __future__ import annotations

import orjson
import pytest
import responses

from functions.reconcile_registry import run_once
from shared.adapters.registry.iothub import IotHubRegistry
from shared.errors import TransientError
from shared.ingest.timeparse import parse_ticks
from shared.reconcile.run import CHECKPOINT
from shared.settings.doors import DoorSettings
from tests.functions.helpers import user_twins
from tests.support import event_factory as factory
from tests.support.fake_registry import CONNECTION_STRING, FakeRegistry
from tests.support.rig import make_app

NOW = parse_ticks("2026-11-23T12:00:00Z")  # factory events happen from 10:00:00 on the same day
MODEL = "dtmi:twinbridge:IoTDevice;1"


class Clock:
    def __init__(self, ticks: int) -> None:
        self.ticks = ticks

    def __call__(self) -> int:
        return self.ticks


@pytest.fixture
def registry():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeRegistry(mock)


def reconcile_app(orphans: str = "mark", page_size: int = 3, max_devices: int = 1000):
    return make_app(doors=DoorSettings(reconcile_orphans=orphans, reconcile_page_size=page_size,
                                       reconcile_max_devices=max_devices, iothub_host_name="fakehub.azure-devices.net"))


def run(app, clock=None, max_items=1000, dry_run=False):
    client = IotHubRegistry.from_settings(None, CONNECTION_STRING)
    return app.reconciler(client, clock or Clock(NOW)).run(max_items, dry_run=dry_run)


def test_pages_through_the_registry_and_creates_missing_twins(registry):
    for i in range(7):
        registry.add(f"dev-{i}", state="Connected" if i % 2 else "Disconnected", model_id="dtmi:acme:Pump;1")
    app = reconcile_app(page_size=3)
    report = run(app)
    pages = [q for q in registry.queries if q[0] == "SELECT * FROM devices"]
    assert pages == [("SELECT * FROM devices", None, "3"), ("SELECT * FROM devices", "3", "3"),
                     ("SELECT * FROM devices", "6", "3")]
    assert report.devices == 7 and report.cycle_complete
    twins = user_twins(app.twins)
    assert twins["dev-1"] == {"$model": MODEL, "connectionState": "Connected"}
    assert twins["dev-2"] == {"$model": MODEL, "connectionState": "Disconnected"}
    assert [a.kind for a in report.actions] == ["create"] * 7
    assert report.actions[0].pnp_model == "dtmi:acme:Pump;1"
    # A second run finds nothing to do and writes nothing.
    creates = app.twins.calls["create"] + app.twins.calls["patch"]
    again = run(app)
    assert again.actions == [] and app.twins.calls["create"] + app.twins.calls["patch"] == creates


def test_registry_newer_than_the_twin_corrects_connection_state_without_regressing_later_events(registry):
    app = reconcile_app()
    app.pipeline.process([factory.lifecycle("dev-a", second=0),
                          factory.connection("dev-a", 5, connected=True, second=1)])
    registry.add("dev-a", state="Disconnected")  # the DeviceDisconnected event was lost
    report = run(app)
    assert [a.kind for a in report.actions] == ["connection"]
    assert user_twins(app.twins)["dev-a"]["connectionState"] == "Disconnected"
    # The event the correction stood in for is redelivered late: it must not undo the correction.
    late_old = app.pipeline.process([factory.connection("dev-a", 5, connected=True, second=1)])
    assert late_old.counts()["applied"] == 0
    assert user_twins(app.twins)["dev-a"]["connectionState"] == "Disconnected"
    # A genuinely newer event (higher sequence) still wins over the reconcile correction.
    newer = app.pipeline.process([factory.connection("dev-a", 6, connected=True, second=7300)])
    assert newer.counts()["applied"] == 1
    assert user_twins(app.twins)["dev-a"]["connectionState"] == "Connected"


def test_event_newer_than_the_registry_read_is_left_alone(registry):
    app = reconcile_app()
    # 11:58:20 — within the 300 s grace before 12:00: the registry query may not show it yet.
    app.pipeline.process([factory.connection("dev-b", 9, connected=True, second=7100)])
    registry.add("dev-b", state="Disconnected")
    report = run(app)
    assert report.actions == []
    assert user_twins(app.twins)["dev-b"]["connectionState"] == "Connected"


def test_twin_without_events_takes_the_registry_state(registry):
    app = reconcile_app()
    app.twins.create_twin("dev-c", {"$metadata": {"$model": MODEL}, "connectionState": "Connected"})
    registry.add("dev-c", state="Disconnected")
    run(app)
    assert user_twins(app.twins)["dev-c"]["connectionState"] == "Disconnected"


@pytest.mark.parametrize("orphans", ["mark", "delete", "report"])
def test_twins_whose_device_is_gone(registry, orphans):
    app = reconcile_app(orphans=orphans)
    app.pipeline.process([factory.lifecycle("gone", second=0), factory.lifecycle("kept", second=0),
                          factory.telemetry("recent", {"temperature": 1.0}, second=7200)])  # 12:00: just now
    app.twins.create_twin("room-1", {"$metadata": {"$model": "dtmi:twinbridge:IoTModule;1"}})  # not a device twin
    registry.add("kept", state="Disconnected")
    report = run(app)
    kinds = {a.twin_id: a.kind for a in report.actions}
    assert kinds.get("gone") == f"orphan-{orphans}"
    assert "recent" not in kinds and "room-1" not in kinds  # heard from within the grace period; not a device
    twins = user_twins(app.twins)
    if orphans == "mark":
        assert twins["gone"]["status"] == "NotInRegistry"
    elif orphans == "delete":
        assert "gone" not in twins
        # A device re-created later (its DeviceCreated is newer than the reconcile's deletion) comes back.
        app.pipeline.process([factory.lifecycle("gone", second=7300, version=1)])
        assert "gone" in user_twins(app.twins)
    else:
        assert twins["gone"] == {"$model": MODEL}
    assert "kept" in twins and "recent" in twins


def test_a_device_deleted_after_the_registry_read_is_not_recreated(registry):
    app = reconcile_app()
    app.pipeline.process([factory.lifecycle("dev-d", second=0), factory.lifecycle("dev-d", created=False,
                                                                                   second=7150)])
    registry.add("dev-d")  # the query still lists it
    report = run(app)
    assert report.actions == [] and "dev-d" not in user_twins(app.twins)


def test_bounded_runs_resume_from_the_checkpoint(registry):
    for i in range(10):
        registry.add(f"dev-{i:02d}")
    app = reconcile_app(page_size=2)
    first = run(app, max_items=4)
    assert first.devices == 4 and not first.cycle_complete
    assert orjson.loads(app.checkpoints.get(CHECKPOINT)) == {"phase": "registry", "token": "4"}
    second = run(app, max_items=4)
    assert second.devices == 4 and registry.queries[2][1] == "4"
    third = run(app, max_items=4)
    assert third.devices == 2 and third.twins_checked == 2 and not third.cycle_complete
    fourth = run(app, max_items=100)
    assert fourth.twins_checked == 8 and fourth.cycle_complete
    assert sorted(user_twins(app.twins)) == [f"dev-{i:02d}" for i in range(10)]


def test_registry_throttling_is_transient_and_keeps_the_resume_point(registry):
    for i in range(4):
        registry.add(f"dev-{i}")
    app = reconcile_app(page_size=2)
    run(app, max_items=2)
    saved = app.checkpoints.get(CHECKPOINT)
    registry.fail_next(429)
    with pytest.raises(TransientError):
        run(app)
    assert app.checkpoints.get(CHECKPOINT) == saved


def test_dry_run_changes_nothing(registry):
    registry.add("dev-x", state="Connected")
    app = reconcile_app()
    report = run(app, dry_run=True)
    assert [a.line() for a in report.actions] == [
        "create         dev-x: device is in the registry (twin version 3), twin is missing"]
    assert user_twins(app.twins) == {} and app.checkpoints.get(CHECKPOINT) is None


def test_cli_dry_run_prints_the_plan(registry, install, monkeypatch, capsys):
    from twinbridge.cli import main

    registry.add("dev-cli", state="Disconnected")
    app = make_app(doors=DoorSettings(iothub_connection_string=CONNECTION_STRING))
    install(app)
    assert main(["reconcile", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan (dry run, nothing changed): 1 action(s)" in out and "create         dev-cli" in out
    assert user_twins(app.twins) == {}


def test_timer_door_runs_with_the_app_registry(registry, install):
    from azure.functions.timer import TimerRequest

    from functions import reconcile_registry as door

    registry.add("dev-t")
    app = reconcile_app()
    install(app)
    report = run_once(IotHubRegistry.from_settings(None, CONNECTION_STRING), Clock(NOW))
    assert [a.kind for a in report.actions] == ["create"]
    app.registry = IotHubRegistry.from_settings(None, CONNECTION_STRING)  # what App.registry builds on first use
    door.reconcile_registry(TimerRequest(past_due=True))  # the decorated function itself
