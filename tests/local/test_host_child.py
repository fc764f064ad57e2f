"""``python -m twinbridge host`` as a child (twinbridge/localhost/child.py), as the demo and the benches start it."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest
import requests

from twinbridge.localhost.child import HostChild

pytestmark = pytest.mark.integration


def settings(path: Path, values: dict[str, str]) -> Path:
    path.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": values}))
    return path


def test_it_serves_at_the_url_it_printed_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    values = {"TWINBRIDGE_STATE_STORE": "memory", "TWINBRIDGE_QUARANTINE": "memory",
              "AzureWebJobs.route_twin_changes_eventhub.Disabled": "true"}
    child = HostChild(settings(tmp_path / "local.settings.json", values), tmp_path / "outputs",
                      log=tmp_path / "host.log")
    try:
        url = child.wait_ready(60)
        assert url == f"http://127.0.0.1:{child.port}"
        assert requests.get(f"{url}/admin/twinbridge/stats", timeout=10).status_code == 200
    finally:
        child.stop()
    # exit 0, not -SIGTERM: the host's handler was in place when it printed its URL, and it stopped its server
    assert child.process.returncode == 0
    assert child.log is not None and child.log.closed
    child.stop()  # again: nothing left to do


def test_a_host_that_cannot_start_is_reported_with_its_log_and_is_stopped(tmp_path: Path) -> None:
    broken = tmp_path / "local.settings.json"
    broken.write_bytes(b"{")
    child = HostChild(broken, tmp_path / "outputs", log=tmp_path / "host.log")
    with pytest.raises(RuntimeError, match=r"did not start \(exit 1\); see .*host\.log"):
        child.wait_ready(60)
    assert child.process.poll() == 1
    assert "is not valid JSON" in (tmp_path / "host.log").read_text()


def test_a_host_not_serving_in_time_is_stopped(tmp_path: Path) -> None:
    child = HostChild(settings(tmp_path / "local.settings.json", {}), tmp_path / "outputs")
    with pytest.raises(RuntimeError, match=r"not serving after 0\.01 s"):
        child.wait_ready(0.01)  # the interpreter alone takes longer than this to start
    assert child.process.returncode in (0, -signal.SIGTERM)  # stopped by its own pid, whether it had its handler
