"""``python -m twinbridge demo --explore`` (make demo EXPLORE=1): after the check, the explorer serves the demo's
twins, its live view has been fed by the emulator's event route, and Ctrl-C stops everything the demo started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_demo_explore_serves_the_demos_twins_with_route_fed_live_changes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINBRIDGE_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "twinbridge", "demo", "--devices", "6", "--duration", "3", "--rate", "10",
         "--no-azurite", "--explore", "--dir", str(tmp_path / "demo")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 240
        url = None
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("explorer: open "):
                url = line.split(" ")[2]
                break
        assert url is not None, "\n".join(lines[-30:])
        assert any(line.startswith("demo passed") for line in lines), "\n".join(lines[-30:])
        info = requests.get(f"{url}/api/info", timeout=10).json()
        assert info["live"] == "route", info  # the event route fed it, not the poller
        assert sum(info["counts"].values()) > 0, info
        graph = requests.get(f"{url}/api/graph", timeout=30).json()
        ids = {twin["$dtId"] for twin in graph["twins"]}
        assert "site-1" in ids and len([i for i in ids if not i.startswith("site-")]) >= 4, sorted(ids)
        assert graph["relationships"], "the demo's site → device relationships"
        assert requests.get(url, timeout=10).status_code == 200  # the page itself
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        lines += rest.splitlines()
    assert demo.returncode == 0, "\n".join(lines[-30:])
    assert any(line.startswith("stopped explorer") for line in lines)
    assert any(line.startswith("stopped ADT emulator") for line in lines)
