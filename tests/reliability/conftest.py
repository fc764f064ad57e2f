"""Every R-test that builds pipelines runs twice in the one test run: as a door calls ``process`` directly, and with
the Event Grid trigger door's group commit and the write pacer on (issue 19; ``harness.make_pipeline``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability import figures, harness


@pytest.fixture(params=["direct", "paced"])
def delivery(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(harness, "PACED", request.param == "paced")
    monkeypatch.setattr(harness, "BUILT", [])
    monkeypatch.setattr(harness, "REMOTE_PACED", [])
    if request.param == "paced":
        monkeypatch.setattr(figures, "VARIANT", " [group commit + pacer]")
    yield str(request.param)
    for pipeline in harness.BUILT:
        pipeline.commit.close()  # its flusher thread: one per pipeline, hundreds per stateful run
    runs = [(p.commit.batches, p.paced.stats.sent, p.paced.stats.waited_seconds) for p in harness.BUILT]
    runs += harness.REMOTE_PACED
    if request.param == "paced":  # the paced run really went through the group commit and the pacer, and queued
        assert all(sum(run[i] for run in runs) > 0 for i in range(3)), runs
    else:
        assert not runs
