"""The app configuration file (YAML or JSON), validated once at start-up with every problem listed.

Sections owned by this module: ``topics``, ``event_types``, ``limits``, ``twin``, ``connection``, ``telemetry``,
``missing_twin``. Other top-level sections (``filters``, ``routes``, …) are kept raw in ``AppConfig.sections`` for
the modules that own them. With no file at all, ``AppConfig.default()`` gives the documented defaults.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import ConfigError, Problem
from shared.ingest.events import IOT_HUB_EVENT_TYPES

# ``${NAME}`` in a config value is replaced by the app setting NAME, so one config file serves every environment
# (the IaC wires the settings). Only the braced form: route filters legitimately contain ``$body``.
_SETTING_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_DEVICE_MODEL = "dtmi:twinbridge:IoTDevice;1"
DEFAULT_MODULE_MODEL = "dtmi:twinbridge:IoTModule;1"
ANY_IOT_HUB = "*"


class MissingTwinPolicy(StrEnum):
    """What to do with connection or telemetry events for a twin that does not exist yet."""

    CREATE = "create"  # create the twin with the mapped model (default: the fleet appears as it talks)
    RETRY = "retry"  # fail the event transiently: the broker redelivers it until DeviceCreated made the twin
    QUARANTINE = "quarantine"  # permanent TWIN_NOT_FOUND: only DeviceCreated may create twins


class TelemetryMode(StrEnum):
    AUTO = "auto"  # every top-level primitive field of a JSON body → the twin property of the same name
    MAPPED = "mapped"  # only the fields listed in telemetry.fields


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Section):
    max_event_bytes: int = Field(default=1_048_576, gt=0)  # Event Grid: 1 MB per event
    max_body_bytes: int = Field(default=262_144, gt=0)  # IoT Hub: 256 KB per device-to-cloud message
    max_string_bytes: int = Field(default=4_096, gt=0)  # ADT: 4 KB per string property (UTF-8)
    max_patch_bytes: int = Field(default=32_768, gt=0)  # ADT: 32 KB per PATCH body
    # Ordering keys (event time, enqueued time) later than now + this are refused (FUTURE_TIMESTAMP): one event
    # stamped 9999-12-31 would otherwise win over every real event for good. docs/reliability.md, "Clock skew".
    max_clock_skew_seconds: int = Field(default=3_600, ge=0)


class TwinSection(_Section):
    device_id: str = "{deviceId}"
    # '~' cannot occur in an IoT Hub device id, so a device 'a-b' and module 'b' of device 'a' never share a twin.
    module_id: str = "{deviceId}~{moduleId}"
    device_model: str = DEFAULT_DEVICE_MODEL
    module_model: str = DEFAULT_MODULE_MODEL

    @field_validator("device_id", "module_id")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{deviceId}" not in value:
            raise ValueError("the template must contain {deviceId}")
        unknown = {part.split("}")[0] for part in value.split("{")[1:]} - {"deviceId", "moduleId", "hubName"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {{deviceId}}, {{moduleId}}, {{hubName}}")
        return value

    @field_validator("module_id")
    @classmethod
    def _module_template(cls, value: str) -> str:
        if "{moduleId}" not in value:
            raise ValueError("the module template must contain {moduleId} (else modules overwrite their device's twin)")
        return value


class ConnectionSection(_Section):
    property: str | None = "connectionState"  # null: connection events are tracked but not written to the twin
    connected: str = "Connected"
    disconnected: str = "Disconnected"


class FieldMap(_Section):
    source: str = Field(min_length=1)  # dotted path in the JSON body, e.g. "sensors.temperature"
    property: str = Field(min_length=1)  # twin property path, '/' between levels, e.g. "thermostat1/temperature"


class TelemetrySection(_Section):
    mode: TelemetryMode = TelemetryMode.AUTO
    fields: list[FieldMap] = Field(default_factory=list)
    base64_json: bool = True  # a base64 body whose bytes are UTF-8 JSON is used as JSON


class AppConfig(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    topics: list[str] = Field(default_factory=list)
    event_types: list[str] = Field(default_factory=lambda: sorted(IOT_HUB_EVENT_TYPES))
    limits: Limits = Field(default_factory=Limits)
    twin: TwinSection = Field(default_factory=TwinSection)
    connection: ConnectionSection = Field(default_factory=ConnectionSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    missing_twin: MissingTwinPolicy = MissingTwinPolicy.CREATE
    models_dir: str | None = None

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - IOT_HUB_EVENT_TYPES)
        if unknown:
            raise ValueError(f"not IoT Hub event types: {unknown}")
        return value

    @property
    def sections(self) -> dict[str, Any]:
        """Top-level sections owned by other modules (filters, routes, …), as raw data."""
        return dict(self.model_extra or {})

    @classmethod
    def default(cls) -> AppConfig:
        return cls()

    @classmethod
    def from_data(cls, data: Any, source: str = "<config>") -> AppConfig:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(source, [Problem("", "the configuration must be a mapping")])
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = [
                Problem(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors(include_url=False)
            ]
            raise ConfigError(source, problems) from None

    @classmethod
    def load(cls, path: str | Path, env: Mapping[str, str] | None = None,
             require_settings: bool = False) -> AppConfig:
        """The config file with ``${NAME}`` references resolved from ``env`` (default: the environment).

        The app starts with ``require_settings=True``: a reference to a missing setting is then an error. Offline
        tooling (filters export, route dry-runs) leaves unresolvable references as they are.
        """
        file = Path(path)
        try:
            text = file.read_bytes()
        except OSError as exc:
            raise ConfigError(str(file), [Problem("", f"cannot read: {exc.strerror}")]) from None
        try:
            data = orjson.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(str(file), [Problem("", f"not valid {file.suffix or 'YAML'}: {exc}")]) from None
        problems: list[Problem] = []
        data = resolve_settings(data, os.environ if env is None else env, "", problems)
        if problems and require_settings:
            raise ConfigError(str(file), problems)
        return cls.from_data(data, str(file))


def resolve_settings(value: Any, env: Mapping[str, str], path: str, problems: list[Problem]) -> Any:
    """``value`` with every ``${NAME}`` replaced by the app setting; a missing setting is a problem at its path."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(Problem(path, f"refers to app setting {name}, which is not set"))
                return match.group(0)
            return env[name]

        return _SETTING_REFERENCE.sub(replace, value)
    if isinstance(value, dict):
        return {k: resolve_settings(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_settings(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value
