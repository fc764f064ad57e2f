"""What the mapper needs to know about the twins' models: which properties (and components) a model declares, and
which JSON values each one accepts.

A port: the answers come from the DTDL registry of the embedded engine (shared/adapters/twins/embedded/dtdl.py),
the same code that validates twins, built by shared/wiring.py from the app's models/ directory. The mapper uses them
to skip body fields the twin's model does not declare (ADT would reject the whole PATCH with 400 ValidationFailed)
and to refuse a mapped value of the wrong type before any write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

# DTDL schemas whose values are JSON objects or arrays (and a Component, which holds an object).
COMPLEX_SCHEMAS: Final = frozenset({"Object", "Map", "Array", "geo", "Component", "any"})


def accepts_any(value: Any) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class PropertyType:
    """A declared property: its DTDL schema (a primitive name such as ``double``, or ``Object``, ``Map``, ``Enum``,
    ``Array``, ``geo``; ``Component`` for a component) and the type test chosen for it once (the mapper calls it per
    field of every event). A string's length is not part of the test: the mapper checks it against its own limit."""

    schema: str
    checker: Callable[[Any], bool] = accepts_any
    component_model: str | None = None  # set when this name is a Component
    # The exact Python types of values ``checker`` accepts whatever they hold (e.g. int and float for a double;
    # non-finite floats aside, which no twin takes): a caller may accept those without calling it.
    sure_types: frozenset[type] = frozenset()

    def accepts(self, value: Any) -> bool:
        return self.checker(value)

    @property
    def primitive(self) -> bool:
        return self.schema not in COMPLEX_SCHEMAS


class ModelTypes(Protocol):
    def declared(self, model_id: str) -> Mapping[str, PropertyType] | None:
        """The model's properties and components by name (inherited ones included), or None for an unknown model.
        The same mapping object comes back until the model changes: callers may cache on its identity."""
        ...


class NoModels:
    """No models known: every model is checked by the twin service alone."""

    def declared(self, model_id: str) -> Mapping[str, PropertyType] | None:
        return None


NO_MODELS: Final = NoModels()


def property_type(models: ModelTypes, model_id: str, path: tuple[str, ...]) -> PropertyType | None:
    """The type at ``path`` (components are followed), or None when the model does not declare it."""
    props = models.declared(model_id)
    for depth, name in enumerate(path):
        if props is None:
            return None
        declared = props.get(name)
        if declared is None:
            return None
        if declared.component_model is not None and depth + 1 < len(path):
            props = models.declared(declared.component_model)
            continue
        if depth + 1 < len(path):
            # Writing inside an Object or Map property: the twin service checks the nested value.
            return PropertyType("any") if declared.schema in ("Object", "Map") else None
        return declared
    return None
