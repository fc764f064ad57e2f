"""Just enough DTDL (v2/v3) to know which properties a model declares and what JSON type each takes.

Used twice: the mapper skips body fields the twin's model does not declare (ADT would reject the whole PATCH with
400 ValidationFailed), and the embedded twin graph rejects such writes exactly as ADT does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

_NUMBER = ("double", "float")
_TEXT = ("string", "date", "dateTime", "time", "duration")


@dataclass(frozen=True, slots=True)
class PropertyType:
    """A declared property: a primitive schema name, or 'object' for Object/Map/Enum-less complex schemas."""

    schema: str
    component_model: str | None = None  # set when this name is a Component
    # The type test for this schema, chosen once: the mapper and the twin graph call it per field of every write.
    checker: Callable[[Any], bool] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        check = _accepts_enum if self.schema.startswith("enum:") else _CHECKERS.get(self.schema, accepts_any)
        object.__setattr__(self, "checker", check)  # frozen: set once, here

    def accepts(self, value: Any) -> bool:
        return self.checker(value)


_DOUBLE_LIMIT: Final = 2**1023  # an integer a double can hold (a constant: 2**1023 is not folded at compile time)


def _accepts_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)  # NaN and infinities are not JSON: ADT cannot store them
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and abs(value) < _DOUBLE_LIMIT)


def _integer_checker(low: int, high: int) -> Callable[[Any], bool]:
    def accepts(value: Any) -> bool:
        return value is None or (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high)
    return accepts


def _type_checker(kind: type) -> Callable[[Any], bool]:
    def accepts(value: Any) -> bool:
        return value is None or isinstance(value, kind)
    return accepts


def _accepts_enum(value: Any) -> bool:
    return value is None or (isinstance(value, int | str) and not isinstance(value, bool))


def accepts_any(value: Any) -> bool:
    return True


_CHECKERS: dict[str, Callable[[Any], bool]] = {
    **{name: _accepts_number for name in _NUMBER},
    # DTDL integer is 32-bit, long 64-bit; ADT refuses values outside them.
    "integer": _integer_checker(-(2**31), 2**31 - 1),
    "long": _integer_checker(-(2**63), 2**63 - 1),
    "boolean": _type_checker(bool),
    **{name: _type_checker(str) for name in _TEXT},
    "object": _type_checker(dict),
}


@dataclass
class ModelCatalog:
    """Models by id, each a mapping from property (or component) name to its type."""

    models: dict[str, dict[str, PropertyType]] = field(default_factory=dict)

    def knows(self, model_id: str) -> bool:
        return model_id in self.models

    def property_type(self, model_id: str, path: tuple[str, ...]) -> PropertyType | None:
        """The type at ``path`` (components are followed), or None when the model does not declare it."""
        props = self.models.get(model_id)
        for depth, name in enumerate(path):
            if props is None:
                return None
            declared = props.get(name)
            if declared is None:
                return None
            if declared.component_model is not None and depth + 1 < len(path):
                props = self.models.get(declared.component_model)
                continue
            if depth + 1 < len(path):
                # Writing inside an Object property: accepted as long as the top property is an object.
                return PropertyType("any") if declared.schema == "object" else None
            return declared
        return None

    @classmethod
    def load_dir(cls, directory: str | Path) -> ModelCatalog:
        catalog = cls()
        for file in sorted(Path(directory).glob("*.json")):
            catalog.add(orjson.loads(file.read_bytes()))
        return catalog

    def add(self, document: Any) -> None:
        interfaces = document if isinstance(document, list) else [document]
        pending: dict[str, tuple[dict[str, PropertyType], list[str]]] = {}
        for interface in interfaces:
            model_id = interface["@id"]
            props: dict[str, PropertyType] = {}
            for content in interface.get("contents", []):
                kinds = content.get("@type")
                kinds = kinds if isinstance(kinds, list) else [kinds]
                if "Property" in kinds:
                    props[content["name"]] = PropertyType(_schema_name(content.get("schema")))
                elif "Component" in kinds:
                    props[content["name"]] = PropertyType("object", component_model=content["schema"])
            extends = interface.get("extends", [])
            pending[model_id] = (props, extends if isinstance(extends, list) else [extends])
        for model_id, (props, extends) in pending.items():
            merged: dict[str, PropertyType] = {}
            for base in extends:
                base_props = pending.get(base, (self.models.get(base, {}), []))[0]
                merged.update(base_props)
            merged.update(props)
            self.models[model_id] = merged


def _schema_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        kind = schema.get("@type")
        if kind == "Enum":
            return f"enum:{schema.get('valueSchema', 'string')}"
        return "object"
    return "any"
