"""Start and stop a private Azurite (Azure Storage emulator) for tests and the demo.

``start_azurite()`` launches ``node_modules/.bin/azurite`` (Blob, Queue and Table) with in-memory persistence on
random free ports of 127.0.0.1, waits until every port accepts connections, and stops it by PID (SIGTERM, then
SIGKILL). The connection string uses Azurite's public, well-known development account key and explicit endpoints,
so several emulators can run side by side::

    with start_azurite() as azurite:
        TableServiceClient.from_connection_string(azurite.connection_string)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's documented development key: public, identical on every machine, useless against real Azure.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"


class AzuriteUnavailable(RuntimeError):
    """Node or the azurite package is not installed (run ``make install`` with npm on the PATH)."""


def azurite_missing_reason() -> str | None:
    """Why Azurite cannot start here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not on the PATH"
    if not AZURITE_BIN.exists():
        return f"{AZURITE_BIN.relative_to(REPO_ROOT)} is missing (run `make install` with npm available)"
    return None


def free_port() -> int:
    """A free TCP port on loopback, for a local server whose port must be known before it starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


@dataclass
class Azurite:
    pid: int
    blob_port: int
    queue_port: int
    table_port: int
    workdir: Path
    log_path: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _own_workdir: bool = field(default=False, repr=False)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.blob_port}/{ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{HOST}:{self.queue_port}/{ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{HOST}:{self.table_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
                f"TableEndpoint={self.table_endpoint};")

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to our own PID, SIGKILL if it is still there after ``grace`` seconds. Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                process.wait(timeout=grace)
        self._process = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_azurite(workdir: str | Path | None = None, *, timeout: float = 30.0) -> Azurite:
    """Launch Azurite and return once Blob, Queue and Table accept connections. Use it as a context manager.

    ``workdir`` is only the process's working directory (its debug/log files); data stays in memory. Azurite
    refuses ``--inMemoryPersistence`` together with ``--location``, so the location is never passed.
    """
    reason = azurite_missing_reason()
    if reason is not None:
        raise AzuriteUnavailable(reason)
    own = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="azurite-")) if workdir is None else Path(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    ports = {"blob": free_port(), "queue": free_port(), "table": free_port()}
    args = [str(AZURITE_BIN), "--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck",
            "--loose"]
    for service, port in ports.items():
        args += [f"--{service}Host", HOST, f"--{service}Port", str(port)]
    log_path = directory / "azurite.log"
    with log_path.open("wb") as log:
        # The node binary itself is the child (no shell), so its PID is the one we stop.
        process = subprocess.Popen(args, cwd=directory, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    azurite = Azurite(process.pid, ports["blob"], ports["queue"], ports["table"], directory, log_path,
                      process, own)
    deadline = time.monotonic() + timeout
    try:
        while not all(_port_open(p) for p in ports.values()):
            if process.poll() is not None:
                raise AzuriteUnavailable(f"azurite exited with {process.returncode}: {_tail(log_path)}")
            if time.monotonic() > deadline:
                raise AzuriteUnavailable(f"azurite did not open ports {ports} within {timeout} s: {_tail(log_path)}")
            time.sleep(0.05)
    except BaseException:
        azurite.stop()
        raise
    return azurite


def _tail(path: Path, chars: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""
