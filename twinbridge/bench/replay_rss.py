"""Peak memory of replaying a long recorded stream: N events written to a temporary JSON Lines file (streamed, never
held in memory), then ``python -m twinbridge replay FILE`` in a child process, whose peak RSS the kernel reports."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twinbridge.bench.workload import TOPIC, Workload


def write_stream(path: Path, events: int, devices: int, seed: int) -> int:
    size = 0
    with path.open("wb") as out:
        for raw in Workload(devices, seed).stream(events):
            out.write(raw)
            out.write(b"\n")
            size += len(raw) + 1
    return size


def replay_rss(events: int, devices: int, seed: int, batch_size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="twinbridge-bench-") as tmp:
        path = Path(tmp) / "events.jsonl"
        started = time.perf_counter()
        file_bytes = write_stream(path, events, devices, seed)
        generated_s = time.perf_counter() - started
        command = [sys.executable, "-m", "twinbridge", "replay", str(path), "--allow-topic", TOPIC,
                   "--batch-size", str(batch_size), "--quiet"]
        env = {**os.environ, "TWINBRIDGE_CONFIG": ""}
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        out = child.stdout.read().decode() if child.stdout else ""
        err = child.stderr.read().decode() if child.stderr else ""
        rss_kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss // 1024
    code = os.waitstatus_to_exitcode(status)
    return {"replay_events": events, "replay_file_mb": round(file_bytes / 1e6, 1), "replay_command": " ".join(
        ["python", "-m", "twinbridge", "replay", "FILE", "--allow-topic", "<bench topic>", "--batch-size",
         str(batch_size), "--quiet"]), "replay_exit_code": code, "replay_seconds": round(elapsed, 2),
        "replay_events_per_s": round(events / elapsed) if elapsed else None,
        "replay_peak_rss_mb": round(rss_kib / 1024, 1), "replay_generate_seconds": round(generated_s, 2),
        "replay_output": (out.strip().splitlines() or [""])[-1][:300], "replay_stderr": err.strip()[-300:]}

