"""The indexing checks the real Python worker/runtime applies before it serves a function, for Pythons where the
real runtime (azure-functions-runtime, 3.13+) is not available here.

The worker refuses the whole app when one function fails these checks (its metadata response is a Failure, so the
host starts with no functions), so the local host must refuse to start too. The checks, as the worker makes them
when it indexes a v2 app: every Python parameter is a binding and every binding a parameter (``context`` and the
``$return`` binding aside); an annotation must be a class or a ``typing`` generic (``typing.List[X]``: the built-in
``list[X]`` is neither to that check); an ``in`` binding is not annotated ``func.Out`` and an ``out`` binding is;
and the binding's converter (the azure-functions library's own) accepts the annotation.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import orjson


@dataclass(frozen=True)
class Refusal:
    function: str
    reason: str

    def __str__(self) -> str:
        return f"cannot load the {self.function} function: {self.reason}"


def _is_typing_generic(annotation: Any) -> bool:
    # typing.List[X] and friends are typing._GenericAlias; the PEP 585 list[X] is types.GenericAlias, which the
    # worker does not accept as a binding annotation.
    return isinstance(annotation, typing._GenericAlias)  # type: ignore[attr-defined]


def _is_out(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and origin.__name__ == "Out"


def check_function(name: str, user_function: Any, bindings: list[dict[str, Any]]) -> list[Refusal]:
    refusals: list[Refusal] = []
    params = {p for p in inspect.signature(user_function).parameters if p != "context"}
    bound = {b["name"]: b for b in bindings if b["name"] != "$return"}
    if params - set(bound):
        missing = sorted(params - set(bound))
        refusals.append(Refusal(name, f"parameters declared in Python but not as bindings: {missing}"))
    if set(bound) - params:
        refusals.append(Refusal(name, f"bindings not present in Python: {sorted(set(bound) - params)}"))
    try:
        hints = typing.get_type_hints(user_function)
    except Exception as exc:  # an annotation that cannot even be resolved fails the import in the worker too
        return [*refusals, Refusal(name, f"annotations cannot be resolved: {exc}")]
    registry = func.get_binding_registry()
    for param in sorted(params & set(bound)):
        if param not in hints:
            continue
        annotation, binding = hints[param], bound[param]
        out = _is_out(annotation)
        py_type = typing.get_args(annotation)[0] if out and typing.get_args(annotation) else annotation
        if not isinstance(py_type, type) and not _is_typing_generic(py_type):
            refusals.append(Refusal(name, f"binding {param} has invalid non-type annotation {annotation!r}"))
            continue
        direction = str(binding.get("direction", "IN")).upper()
        if direction == "OUT" and not out:
            refusals.append(Refusal(name, f"binding {param} is declared out but its annotation is not func.Out"))
            continue
        if direction == "IN" and out:
            refusals.append(Refusal(name, f"binding {param} is declared in but annotated func.Out"))
            continue
        converter = registry.get(binding["type"]) if registry is not None else None
        if converter is None or py_type in (str, bytes):
            continue  # generic binding: the worker passes str/bytes through
        check = converter.check_output_type_annotation if out else converter.check_input_type_annotation
        if not check(py_type):
            refusals.append(Refusal(name, f"type of {param} binding in function.json {binding['type']!r} does not "
                                          f"match its Python annotation {py_type!r}"))
    return refusals


def check_app(app: func.FunctionApp) -> tuple[list[Any], list[Refusal]]:
    """(the app's functions, every refusal). Calls app.get_functions() — once per app, as the worker does."""
    functions = list(app.get_functions())
    refusals: list[Refusal] = []
    for function in functions:
        bindings = orjson.loads(function.get_function_json())["bindings"]
        refusals += check_function(str(function.get_function_name()), function.get_user_function(), bindings)
    return functions, refusals
