"""What the tests that run ``python -m twinbridge host`` or the real Functions runtime share (tests/runtime)."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from twinbridge.localhost import real_runtime
from twinbridge.localhost.child import READY_LINE, app_free_env

_LISTENING = re.compile(re.escape(READY_LINE) + r"(\S+)")


def skip_without_real_runtime() -> None:
    """At the top of a real-runtime test module: skip the module where azure-functions-runtime cannot run here
    (`make runtime-test` runs it in .venv313), unless TWINBRIDGE_REQUIRE_REAL_RUNTIME=1 (CI) makes that an error."""
    missing = real_runtime.available()
    if missing:
        if os.environ.get("TWINBRIDGE_REQUIRE_REAL_RUNTIME") == "1":
            raise RuntimeError(f"the real-runtime tier must run here but cannot: {missing}")
        pytest.skip(f"real-runtime tier: {missing} (make runtime-test runs it in .venv313)", allow_module_level=True)


def host_env() -> dict[str, str]:
    """This environment without the app's settings: a host child reads them from its --settings file only."""
    return app_free_env()


def host_url(process: subprocess.Popen[str], timeout: float = 60.0) -> str | None:
    """The URL a started host prints ("Host listening on URL"); None when it exits, or has not said so within
    ``timeout`` seconds (checked between lines)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            return None
        found = _LISTENING.match(line)
        if found:
            return found.group(1)
    return None
