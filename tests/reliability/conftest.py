"""Every R-test that builds pipelines runs twice in the one test run: as a door calls ``process`` directly, and with
the Event Grid trigger door's group commit and the write pacer on (issue 19; ``harness.make_pipeline``)."""

from __future__ import annotations

import pytest

from tests.reliability import harness


@pytest.fixture(params=["direct", "paced"])
def delivery(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(harness, "PACED", request.param == "paced")
    return str(request.param)
