"""configure_telemetry: Application Insights only when its connection string is set, silent otherwise."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential

from shared import observability
from shared.observability import EVENTS, Metrics, configure_telemetry
from shared.settings.environment import APP_ROOT

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    observability._reset_for_tests()
    yield
    observability._reset_for_tests()


class Recorder:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error


def test_silent_without_a_connection_string(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    with caplog.at_level(logging.DEBUG):
        assert configure_telemetry({}, configure=recorder) is False
        assert configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "}, configure=recorder) is False
    assert recorder.calls == []
    assert not [r for r in caplog.records if r.name.startswith("twinbridge")]


def test_configures_once_with_the_connection_string_and_binds_the_counters() -> None:
    recorder, metrics = Recorder(), Metrics()
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}
    assert configure_telemetry(env, configure=recorder, metrics=metrics) is True
    assert configure_telemetry(env, configure=recorder, metrics=metrics) is True  # idempotent
    assert recorder.calls == [{"connection_string": CONNECTION, "disable_logging": True}]
    assert metrics._meter is not None
    metrics.add(EVENTS, outcome="applied")  # forwarded to the OpenTelemetry API meter without error
    assert metrics.total(EVENTS) == 1


def test_entra_ingestion_uses_the_managed_identity() -> None:
    recorder = Recorder()
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
           "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"}
    assert configure_telemetry(env, configure=recorder, metrics=Metrics())
    assert isinstance(recorder.calls[0]["credential"], ManagedIdentityCredential)


def test_a_failure_to_configure_never_stops_the_app(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(ValueError("Instrumentation key cannot be none or empty."))
    with caplog.at_level(logging.WARNING, logger="twinbridge.observability"):
        assert configure_telemetry({"APPLICATIONINSIGHTS_CONNECTION_STRING": "junk"}, configure=recorder) is False
    assert "OpenTelemetry not configured: ValueError" in caplog.text


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=APP_ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_importing_does_not_import_azure_monitor() -> None:
    done = _run("import sys, shared.observability as o; o.configure_telemetry({}); "
                "print(sorted(m for m in sys.modules if m.startswith(('azure.monitor', 'opentelemetry'))))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_real_distro_raises_without_a_connection_string_which_is_why_it_is_guarded() -> None:
    done = _run("from azure.monitor.opentelemetry import configure_azure_monitor\n"
                "try:\n    configure_azure_monitor()\nexcept ValueError as e:\n    print('ValueError', e)")
    assert done.stdout.startswith("ValueError"), done.stdout + done.stderr


def test_the_real_distro_is_wired_with_a_connection_string() -> None:
    # Ingestion endpoint on a closed local port: nothing leaves the machine; export failures are the exporter's.
    done = _run("from shared.observability import configure_telemetry, METRICS, EVENTS\n"
                f"print(configure_telemetry({{'APPLICATIONINSIGHTS_CONNECTION_STRING': {CONNECTION!r}}}))\n"
                "from opentelemetry import metrics\n"
                "print(type(metrics.get_meter_provider()).__module__)\n"
                "METRICS.add(EVENTS, outcome='applied')\n",
                {"OTEL_TRACES_EXPORTER": "none"})
    lines = done.stdout.split()
    assert lines[:2] == ["True", "opentelemetry.sdk.metrics._internal"], done.stdout + done.stderr
