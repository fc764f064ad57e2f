"""Device → twin mapping, compiled once from the config (paths split, templates checked against the models).

Defaults (no config file): twin id = device id (modules: ``{deviceId}~{moduleId}``); the models shipped in
``models/``; every top-level primitive field of a JSON body → the twin property of the same name, kept only when
the twin's model declares it with a compatible type (ADT would reject the whole PATCH otherwise); connection events
→ property ``connectionState`` = ``"Connected"`` / ``"Disconnected"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import Code, ConfigError, PermanentError, Problem
from shared.ingest.events import IotHubEvent
from shared.ingest.model_types import ModelTypes, accepts_any, property_type
from shared.settings.app_config import AppConfig, TelemetryMode

Path = tuple[str, ...]
# DTDL property names: a letter, then letters, digits or underscores, not ending in an underscore, ≤ 64 chars.
_DTDL_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_]{0,62}[A-Za-z0-9])?$")
# Auto mode remembers, per model, a plan per body shape (bounded: bodies of ever-new shapes are planned per event).
# The benchmark's profile put the per-field name check and model lookup at ~20 % of the core before this.
_SHAPE_CACHE_LIMIT = 1024
_TARGET_CACHE_LIMIT = 65_536
# (body key, the exact value types that need no further test, the type check for any other value) for each key
# that maps: a value of a listed type is accepted without a call (one call per field of every event was ~10 % of
# auto mode's cost in the benchmark).
_ShapePlan = tuple[tuple[str, frozenset[type], Callable[[Any], bool]], ...]
# What a property takes without further test when nothing narrower is known: an unknown model, or a ModelTypes
# whose property type has no check of its own (accepts_any).
_JSON_PRIMITIVES: frozenset[type] = frozenset({str, int, float, bool})


@dataclass(slots=True)
class TwinTarget:
    twin_id: str
    model_id: str
    device_id: str
    module_id: str | None


@dataclass(frozen=True, slots=True)
class _Field:
    source: Path
    target: Path
    source_text: str
    field: str  # the target joined with '/': the shadow's name for it


def _field(source: str, prop: str) -> _Field:
    target = _split_property(prop)
    return _Field(tuple(source.split(".")), target, source, "/".join(target))


def _split_property(path: str) -> Path:
    return tuple(part for part in path.strip("/").split("/"))


class Mapper:
    def __init__(self, config: AppConfig, catalog: ModelTypes) -> None:
        self._twin = config.twin
        self._catalog = catalog
        self._mode = config.telemetry.mode
        self._max_string = config.limits.max_string_bytes
        self._fields = tuple(_field(f.source, f.property) for f in config.telemetry.fields)
        conn = config.connection
        self.connection_path: Path | None = _split_property(conn.property) if conn.property else None
        # model id -> (the declared-properties mapping it was built from, body shape -> its plan)
        self._auto_shapes: dict[str, tuple[object, dict[tuple[str, ...], _ShapePlan]]] = {}
        self._targets: dict[tuple[str, str | None, str | None], TwinTarget] = {}
        self._check(config)

    def _check(self, config: AppConfig) -> None:
        problems: list[Problem] = []
        if self._mode is TelemetryMode.MAPPED and not self._fields:
            problems.append(Problem("telemetry.fields", "mode 'mapped' needs at least one field"))
        models = (("twin.device_model", config.twin.device_model), ("twin.module_model", config.twin.module_model))
        for where, model in models:
            if self._catalog.declared(model) is None:
                continue  # an unknown model is checked by ADT itself; nothing to check locally
            if self.connection_path and property_type(self._catalog, model, self.connection_path) is None:
                problems.append(Problem("connection.property", f"{'/'.join(self.connection_path)!r} is not declared "
                                                               f"by {model} ({where})"))
            for i, f in enumerate(self._fields):
                if property_type(self._catalog, model, f.target) is None:
                    problems.append(Problem(f"telemetry.fields[{i}].property",
                                            f"{'/'.join(f.target)!r} is not declared by {model} ({where})"))
        targets: set[Path] = set()
        for i, f in enumerate(self._fields):
            if f.target in targets:
                problems.append(Problem(f"telemetry.fields[{i}].property", f"{f.field!r} is already fed by another "
                                                                           "field: one source per property"))
            targets.add(f.target)
            if self.connection_path and f.target == self.connection_path:
                problems.append(Problem(f"telemetry.fields[{i}].property", "is the connection property: only "
                                                                           "connection events may set it"))
            if any(not _DTDL_NAME.match(part) for part in f.target):
                problems.append(Problem(f"telemetry.fields[{i}].property", "each level must be a valid DTDL name"))
        if problems:
            raise ConfigError("mapping", problems)

    def target(self, event: IotHubEvent) -> TwinTarget:
        # A fleet's devices send again and again: one target per (device, module, hub), shared, bounded.
        key = (event.device_id, event.module_id, event.hub_name)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= _TARGET_CACHE_LIMIT:
                self._targets.clear()
            target = self._targets[key] = self._make_target(event)
        return target

    def _make_target(self, event: IotHubEvent) -> TwinTarget:
        if event.module_id:
            template, model = self._twin.module_id, self._twin.module_model
        else:
            template, model = self._twin.device_id, self._twin.device_model
        twin_id = (template.replace("{deviceId}", event.device_id)
                   .replace("{moduleId}", event.module_id or "")
                   .replace("{hubName}", (event.hub_name or "").lower()))
        return TwinTarget(twin_id, model, event.device_id, event.module_id)

    def telemetry_fields(self, target: TwinTarget, body: dict[str, Any]) -> dict[str, Any]:
        """The twin fields an event's body sets, with their values, in body order; a field is its property path
        joined with '/' (the shadow's field names)."""
        if self._mode is TelemetryMode.AUTO:
            return self._auto(target.model_id, body)
        return self._mapped(target, body)

    def _auto(self, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        # Devices of one model send bodies of a few shapes (the same keys in the same order), so what each key maps
        # to and how its value is type-checked is decided once per shape; per event only the values are checked.
        shapes = self._shapes_for(model_id)
        keys = tuple(body)
        plan = shapes.get(keys)
        if plan is None:
            plan = self._shape_plan(model_id, keys)
            if len(shapes) < _SHAPE_CACHE_LIMIT:
                shapes[keys] = plan
        out: dict[str, Any] = {}
        isfinite = math.isfinite
        for name, sure, accepts in plan:
            value = body[name]
            kind = type(value)
            if kind is float and not isfinite(value):
                # One code for one problem on every door: the webhook's parser refuses NaN, the trigger's reads it.
                raise PermanentError.at(Code.UNSUPPORTED_VALUE, f"data.body.{name}", f"{value!r} is not a JSON number")
            if kind in sure or (value is not None and accepts(value)):  # each plan's check refuses objects, arrays
                if kind is str:
                    self._check_size(name, value)
                out[name] = value
        return out

    def _shapes_for(self, model_id: str) -> dict[tuple[str, ...], _ShapePlan]:
        # Keyed on the identity of the model's declared properties, so a model (re)uploaded later is seen.
        props = self._catalog.declared(model_id)
        cached = self._auto_shapes.get(model_id)
        if cached is None or cached[0] is not props:
            cached = self._auto_shapes[model_id] = (props, {})
        return cached[1]

    def _shape_plan(self, model_id: str, keys: tuple[str, ...]) -> _ShapePlan:
        """For each body key that maps to a twin property (auto mode: the property of the same name), its check."""
        known = self._catalog.declared(model_id) is not None
        plan: list[tuple[str, frozenset[type], Callable[[Any], bool]]] = []
        for name in keys:
            if not isinstance(name, str) or not _DTDL_NAME.match(name) or (name,) == self.connection_path:
                continue  # only connection events, ordered by sequence number, may set it (no self-reported spoofing)
            if not known:
                plan.append((name, _JSON_PRIMITIVES, _finite_primitive))
                continue
            declared = property_type(self._catalog, model_id, (name,))
            if declared is None or not declared.primitive:
                continue  # auto mode writes top-level primitives only
            if declared.checker is accepts_any:
                plan.append((name, _JSON_PRIMITIVES, _finite_primitive))
            else:
                plan.append((name, declared.sure_types, declared.checker))
        return tuple(plan)

    def _mapped(self, target: TwinTarget, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        known = self._catalog.declared(target.model_id) is not None
        for f in self._fields:
            value: Any = body
            for key in f.source:
                if not isinstance(value, dict) or key not in value:
                    value = _MISSING
                    break
                value = value[key]
            if value is _MISSING or value is None:
                continue
            if not _finite(value):
                raise PermanentError.at(Code.UNSUPPORTED_VALUE, f"data.body.{f.source_text}",
                                        f"{value!r} is not a JSON number")
            if known:
                declared = property_type(self._catalog, target.model_id, f.target)
                if declared is not None and not declared.accepts(value):
                    raise PermanentError.at(
                        Code.MAPPING_FAILED, f"data.body.{f.source_text}",
                        f"{type(value).__name__} does not fit {'/'.join(f.target)} ({declared.schema})",
                    )
            self._check_size(f.source_text, value)
            out[f.field] = value
        return out

    def _check_size(self, name: str, value: Any) -> None:
        if isinstance(value, str) and len(value) * 4 > self._max_string and len(value.encode()) > self._max_string:
            raise PermanentError.at(
                Code.VALUE_TOO_LARGE, f"data.body.{name}",
                f"string of {len(value.encode())} bytes exceeds the twin property limit of {self._max_string}",
            )


_MISSING: Any = object()


def _finite_primitive(value: Any) -> bool:
    return not isinstance(value, _CONTAINERS) and _finite(value)


_CONTAINERS = (dict, list)


def _finite(value: Any) -> bool:
    """NaN and infinities (which Python's json module reads) are not JSON: no twin can hold them."""
    return not isinstance(value, float) or math.isfinite(value)
