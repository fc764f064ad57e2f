"""``python -m twinbridge infra params``: warnings for filters the app would contradict, errors for bad config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from twinbridge.cli import main


def _run(tmp_path: Path, config: dict[str, object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["infra", "params", "--config", str(path), "--iot-hub", "hub-1", "--deploy-event-subscription",
                 "--always-ready", "1"])
    out, err = capsys.readouterr()
    return code, out, err


def test_parameters_carry_the_filter_and_the_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(tmp_path, {"filters": {"subscription": {
        "includedEventTypes": ["Microsoft.Devices.DeviceTelemetry"],
        "advancedFilters": [{"operatorType": "NumberGreaterThan", "key": "data.body.temperature", "value": 20}]}}},
        capsys)
    assert code == 0 and err == ""
    params = json.loads(out)["parameters"]
    assert params["iotHubName"] == {"value": "hub-1"}
    assert params["deployEventSubscription"] == {"value": True}
    assert params["alwaysReadyInstances"] == {"value": 1}
    assert params["eventSubscriptionFilter"]["value"]["advancedFilters"] == [
        {"operatorType": "NumberGreaterThan", "key": "data.body.temperature", "value": 20}]


def test_warns_when_event_grid_would_deliver_types_the_app_refuses(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(tmp_path, {"event_types": ["Microsoft.Devices.DeviceTelemetry"]}, capsys)
    assert code == 0 and "no includedEventTypes" in err
    code, _, err = _run(tmp_path, {"event_types": ["Microsoft.Devices.DeviceTelemetry"], "filters": {"subscription": {
        "includedEventTypes": ["Microsoft.Devices.DeviceTelemetry", "Microsoft.Devices.DeviceCreated"]}}}, capsys)
    assert code == 0 and "['Microsoft.Devices.DeviceCreated'] are not in the config's event_types" in err


def test_warns_that_a_routing_query_lives_on_the_hub(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(tmp_path, {"filters": {"routing_query": "$body.temperature > 20"}}, capsys)
    assert code == 0 and "--route-name RouteToEventGrid" in err


def test_invalid_filters_and_config_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(tmp_path, {"filters": {"subscription": {
        "advancedFilters": [{"operatorType": "NumberGreaterThan", "key": "data.x", "value": "twenty"}]}}}, capsys)
    assert (code, out) == (2, "") and "advancedFilters[0]" in err
    code, out, err = _run(tmp_path, {"missing_twin": "sometimes"}, capsys)
    assert (code, out) == (2, "") and "missing_twin" in err
