"""``python -m twinbridge host`` as a child process, for the tools that drive a real host (demo, benches, tests).

The child prints ``Host listening on <url>`` once it serves (twinbridge/commands/host.py); a thread reads its stdout
for that line (and keeps draining it, so the child never blocks on a full pipe). It is stopped by its own process id:
SIGTERM (the host stops its server and exits), SIGKILL if it has not exited after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from shared.settings.environment import APP_ROOT

READY_LINE = "Host listening on "
# The app's own settings (and the Functions host's): a host child reads them from its --settings file only.
_APP_SETTING_PREFIXES = ("TWINBRIDGE_", "ADT_", "WEBHOOK_", "AzureWebJobs")


def app_free_env() -> dict[str, str]:
    """This process's environment without the app's settings (the default environment of a HostChild)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_APP_SETTING_PREFIXES)}


def stop_child(process: subprocess.Popen[Any], log: IO[Any] | None = None, grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: a child stopped by its own process id; its log closed."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    if log is not None:
        log.close()


class HostChild:
    """One ``python -m twinbridge host --port PORT --settings SETTINGS --outputs OUTPUTS`` child.

    ``port`` 0: the host picks a free one (read back from its URL). ``env``: the child's whole environment (default:
    ``app_free_env()``). ``log``: a file for its stderr (default: discarded). ``python``: the interpreter (default: this
    one). ``grace``: seconds between SIGTERM and SIGKILL when stopping.
    """

    def __init__(self, settings: Path, outputs: Path, *, port: int = 0, env: Mapping[str, str] | None = None,
                 log: Path | None = None, python: str | None = None, grace: float = 15.0) -> None:
        self.log_path = log
        self.log = log.open("wb") if log is not None else None
        self.grace = grace
        self.process = subprocess.Popen(
            [python or sys.executable, "-m", "twinbridge", "host", "--port", str(port), "--settings", str(settings),
             "--outputs", str(outputs)], cwd=APP_ROOT, env=app_free_env() if env is None else dict(env),
            stdout=subprocess.PIPE, stderr=self.log if self.log is not None else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        self.pid = self.process.pid
        self.url: str | None = None
        self._ready = threading.Event()  # set on the ready line, or when stdout closes (the child exited)
        threading.Thread(target=self._read, name=f"host-{self.pid}-stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith(READY_LINE):
                self.url = line.removeprefix(READY_LINE)
                self._ready.set()
        self._ready.set()  # stdout closed: the child has exited (or closed it); wait_ready need not wait longer

    def wait_ready(self, timeout: float) -> str:
        """The host's URL once it serves; RuntimeError (the child stopped) if it exits or is not serving in time."""
        self._ready.wait(timeout)
        if self.url is None:
            exited = self.process.poll()
            if exited is None and self._ready.is_set():  # stdout closed, no URL: let the exit land
                with contextlib.suppress(subprocess.TimeoutExpired):
                    exited = self.process.wait(timeout=5)
            self.stop()
            where = f"; see {self.log_path}" if self.log_path is not None else ""
            state = f"exit {exited}" if exited is not None else f"not serving after {timeout:g} s"
            raise RuntimeError(f"the local host did not start ({state}){where}")
        return self.url

    @property
    def port(self) -> int:
        if self.url is None:
            raise RuntimeError("the local host is not serving yet: wait_ready first")
        port = urlsplit(self.url).port
        assert port is not None
        return port

    def stop(self) -> None:
        """Stop the child (idempotent); its log is closed."""
        stop_child(self.process, self.log, self.grace)
