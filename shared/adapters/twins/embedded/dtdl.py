"""DTDL v2 and v3 models as Azure Digital Twins accepts them, and the twin values they allow.

Why our own parser: no maintained DTDL parser exists for Python on the package index (Microsoft's reference parser,
DTDLParser, is .NET; the JavaScript ``@azure/dtdl-parser`` is a beta for node). This one covers what ADT checks
when models are uploaded and when twins and relationships are written:

* Interfaces (``@context`` ``dtmi:dtdl:context;2`` or ``;3`` plus extension contexts), DTMI syntax, content names,
  ``extends`` (ids or inline interfaces, resolved in any upload order, cycles refused), ``schemas`` (reusable
  complex schemas by id), duplicate names across an extends chain, and the documented limits
  (https://github.com/Azure/opendigitaltwins-dtdl/blob/master/DTDL/v2/DTDL.v2.md and .../v3/DTDL.v3.md):
  v2 ≤ 2 direct ``extends``, ≤ 300 contents, names ≤ 64 chars, complex schema depth ≤ 5; v3 ≤ 12 direct
  ``extends``, names ≤ 512 chars, depth ≤ 8; extends depth ≤ 10 in both.
* Properties, Components (the component's interface may not contain components), Relationships (``target``,
  ``properties``, ``maxMultiplicity``), Telemetry and Commands (parsed, not used for twin values).
* Schemas: every primitive of v2/v3, Object, Map, Enum, Array; semantic types (co-types such as
  ``["Property", "Temperature"]``) are accepted and carry no value rule.

Values (ADT's documented rules, https://learn.microsoft.com/azure/digital-twins/concepts-models and
reference-service-limits): type per schema, integer/long ranges, date/dateTime/time/duration formats, Enum
membership, Object fields (undeclared ones refused), Map values, Array elements, strings ≤ 4 KB (UTF-8) at any depth,
property and map-key names ≤ 1 KB.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Final

from shared.adapters.twins.embedded.errors import AdtError, bad_request, validation_failed

MAX_STRING_BYTES: Final = 4_096
MAX_NAME_BYTES: Final = 1_024

_DTMI = re.compile(
    r"^dtmi:(?:_+[A-Za-z0-9]|[A-Za-z])(?:[A-Za-z0-9_]*[A-Za-z0-9])?"
    r"(?::(?:_+[A-Za-z0-9]|[A-Za-z])(?:[A-Za-z0-9_]*[A-Za-z0-9])?)*"
    r"(?:;[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,5})?)?$"
)
_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?$")
_CONTEXTS: Final = {"dtmi:dtdl:context;2": 2, "dtmi:dtdl:context;3": 3}
_CONTENT_KINDS: Final = ("Property", "Telemetry", "Command", "Relationship", "Component")
_LIMITS: Final = {
    2: {"extends": 2, "contents": 300, "name": 64, "depth": 5},
    3: {"extends": 12, "contents": 100_000, "name": 512, "depth": 8},
}
_EXTENDS_DEPTH: Final = 10
_FLOAT_KINDS: Final = frozenset({"double", "float", "decimal"})

_INT_RANGES: Final = {
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "unsignedByte": (0, 2**8 - 1),
    "unsignedShort": (0, 2**16 - 1),
    "unsignedInteger": (0, 2**32 - 1),
    "unsignedLong": (0, 2**64 - 1),
}
_V2_PRIMITIVES: Final = frozenset(
    {"boolean", "date", "dateTime", "double", "duration", "float", "integer", "long", "string", "time"})
_V3_PRIMITIVES: Final = _V2_PRIMITIVES | {"byte", "bytes", "decimal", "short", "uuid", "unsignedByte",
                                          "unsignedShort", "unsignedInteger", "unsignedLong"}
# v2 geospatial schemas are JSON objects (GeoJSON); accepted as objects.
_GEO: Final = frozenset({"point", "multiPoint", "lineString", "multiLineString", "polygon", "multiPolygon"})

_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DURATION = re.compile(
    r"^P(?!$)(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?(?:\d+(?:\.\d+)?D)?"
    r"(?:T(?=\d)(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _parser_error(message: str) -> AdtError:
    return bad_request("DTDLParserError", message)


# ---- parsed model ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Schema:
    """A resolved schema. ``kind`` is a primitive name, or ``Object``/``Map``/``Enum``/``Array``/``geo``."""

    kind: str
    fields: dict[str, Schema] = field(default_factory=dict)  # Object
    item: Schema | None = None  # Map value / Array element
    enum_values: tuple[Any, ...] = ()  # Enum
    value_kind: str = ""  # Enum valueSchema


@dataclass(frozen=True, slots=True)
class Relationship:
    name: str
    target: str | None
    properties: dict[str, Schema]
    max_multiplicity: int | None


@dataclass(slots=True)
class Interface:
    """One interface as declared (its own contents only); ``Registry.resolved`` flattens the extends chain."""

    id: str
    version: int
    extends: list[str]
    properties: dict[str, Schema] = field(default_factory=dict)
    components: dict[str, str] = field(default_factory=dict)
    relationships: dict[str, Relationship] = field(default_factory=dict)
    others: set[str] = field(default_factory=set)  # Telemetry and Command names (they share the name space)
    # Schemas still named by id: resolved against the interface's (and its batch's) ``schemas`` on registration.
    document: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolved:
    """An interface with everything it inherits."""

    id: str
    ancestors: tuple[str, ...]  # itself first, then every base (transitively)
    properties: dict[str, Schema]
    components: dict[str, str]
    relationships: dict[str, Relationship]
    # "/<property>" → (name, schema): the graph's cheap PATCH path looks an op's whole path up (no slicing).
    property_paths: dict[str, tuple[str, Schema]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "property_paths",
                           {f"/{name}": (name, schema) for name, schema in self.properties.items()})


# ---- parsing ---------------------------------------------------------------------------------------------------
class _BatchParser:
    """Parses a batch of top-level interfaces; complex schemas named by id are looked up in ``schemas`` of any
    interface in the batch (or already registered), which is how DTDL lets them be reused."""

    def __init__(self, known_schemas: dict[str, dict[str, Any]]) -> None:
        self.interfaces: dict[str, Interface] = {}
        self.order: list[str] = []
        self.schema_docs: dict[str, dict[str, Any]] = dict(known_schemas)
        self.pending_schemas: list[tuple[Interface, str, dict[str, Any], str]] = []

    def parse(self, documents: list[Any]) -> None:
        for index, document in enumerate(documents):
            if not isinstance(document, dict):
                raise _parser_error(f"model [{index}] is not a JSON object")
            version = self._context_version(document.get("@context"), index)
            self._interface(document, version, top=True)

    @staticmethod
    def _context_version(context: Any, index: int) -> int:
        contexts = context if isinstance(context, list) else [context]
        if not contexts or not isinstance(contexts[0], str):
            raise _parser_error(f"model [{index}]: @context is required (dtmi:dtdl:context;2 or ;3)")
        version = _CONTEXTS.get(contexts[0])
        if version is None:
            raise AdtError(400, "ModelVersionNotSupported", f"model [{index}]: unsupported @context {contexts[0]!r}")
        for extra in contexts[1:]:
            if not isinstance(extra, str) or not extra.startswith("dtmi:"):
                raise _parser_error(f"model [{index}]: invalid @context entry {extra!r}")
        return version

    def _interface(self, doc: dict[str, Any], version: int, top: bool) -> str:
        model_id = doc.get("@id")
        if not isinstance(model_id, str) or not _DTMI.match(model_id) or len(model_id) > 2048:
            raise _parser_error(f"@id {model_id!r} is not a valid DTMI")
        if doc.get("@type") != "Interface":
            raise _parser_error(f"{model_id}: @type must be 'Interface'")
        if top and ";" not in model_id:
            raise _parser_error(f"{model_id}: a top-level interface id needs a version (;1)")
        if model_id in self.interfaces:
            raise _parser_error(f"{model_id} is defined twice in the request")
        limits = _LIMITS[version]
        raw_extends = doc.get("extends", [])
        extends_list = raw_extends if isinstance(raw_extends, list) else [raw_extends]
        if len(extends_list) > limits["extends"]:
            raise _parser_error(f"{model_id}: more than {limits['extends']} interfaces in extends")
        extends: list[str] = []
        for base in extends_list:
            if isinstance(base, str):
                if not _DTMI.match(base):
                    raise _parser_error(f"{model_id}: extends {base!r} is not a valid DTMI")
                extends.append(base)
            elif isinstance(base, dict):  # an inline interface: parsed and registered under its own @id
                extends.append(self._interface(base, version, top=False))
            else:
                raise _parser_error(f"{model_id}: extends must hold DTMIs or interfaces")
        for schema_doc in doc.get("schemas", []) or []:
            if not isinstance(schema_doc, dict) or not isinstance(schema_doc.get("@id"), str):
                raise _parser_error(f"{model_id}: every entry of schemas needs an @id")
            self.schema_docs[schema_doc["@id"]] = schema_doc
        interface = Interface(model_id, version, extends, document=doc)
        contents = doc.get("contents", []) or []
        if not isinstance(contents, list):
            raise _parser_error(f"{model_id}: contents must be an array")
        if len(contents) > limits["contents"]:
            raise _parser_error(f"{model_id}: more than {limits['contents']} contents")
        for content in contents:
            self._content(interface, content, limits)
        self.interfaces[model_id] = interface
        if top:
            self.order.append(model_id)
        return model_id

    def _content(self, interface: Interface, content: Any, limits: dict[str, int]) -> None:
        if not isinstance(content, dict):
            raise _parser_error(f"{interface.id}: a content is not an object")
        types = content.get("@type")
        types = types if isinstance(types, list) else [types]
        kinds = [t for t in types if t in _CONTENT_KINDS]
        if len(kinds) != 1:
            raise _parser_error(f"{interface.id}: content @type {content.get('@type')!r} is not one of "
                                f"{', '.join(_CONTENT_KINDS)}")
        kind = kinds[0]
        name = self._name(interface.id, content.get("name"), limits)
        if name in interface.properties or name in interface.components or name in interface.relationships \
                or name in interface.others:
            raise _parser_error(f"{interface.id}: duplicate content name {name!r}")
        if kind == "Property":
            interface.properties[name] = self._schema(interface.id, content.get("schema"), limits, 1, name)
        elif kind == "Component":
            schema = content.get("schema")
            if isinstance(schema, dict) and schema.get("@type") == "Interface":
                schema = self._interface(schema, interface.version, top=False)
            if not isinstance(schema, str) or not _DTMI.match(schema):
                raise _parser_error(f"{interface.id}: component {name!r} needs an interface DTMI as schema")
            interface.components[name] = schema
        elif kind == "Relationship":
            target = content.get("target")
            if target is not None and (not isinstance(target, str) or not _DTMI.match(target)):
                raise _parser_error(f"{interface.id}: relationship {name!r} target is not a DTMI")
            maximum = content.get("maxMultiplicity")
            if maximum is not None and (not isinstance(maximum, int) or isinstance(maximum, bool) or maximum < 1):
                raise _parser_error(f"{interface.id}: relationship {name!r} maxMultiplicity must be ≥ 1")
            minimum = content.get("minMultiplicity", 0)
            if interface.version == 2 and minimum != 0:
                raise _parser_error(f"{interface.id}: relationship {name!r} minMultiplicity must be 0 in DTDL v2")
            props: dict[str, Schema] = {}
            for prop in content.get("properties", []) or []:
                prop_types = prop.get("@type") if isinstance(prop, dict) else None
                if not isinstance(prop, dict) or "Property" not in (
                        prop_types if isinstance(prop_types, list) else [prop_types]):
                    raise _parser_error(f"{interface.id}: relationship {name!r} properties must be Properties")
                prop_name = self._name(interface.id, prop.get("name"), limits)
                if prop_name in props:
                    raise _parser_error(f"{interface.id}: relationship {name!r} repeats property {prop_name!r}")
                props[prop_name] = self._schema(interface.id, prop.get("schema"), limits, 1, prop_name)
            interface.relationships[name] = Relationship(name, target, props, maximum)
        else:
            if kind == "Telemetry":
                self._schema(interface.id, content.get("schema"), limits, 1, name)
            interface.others.add(name)

    @staticmethod
    def _name(owner: str, name: Any, limits: dict[str, int]) -> str:
        if not isinstance(name, str) or not _NAME.match(name) or len(name) > limits["name"]:
            raise _parser_error(f"{owner}: name {name!r} is invalid (letters, digits, _; ≤ {limits['name']} chars)")
        return name

    def _schema(self, owner: str, schema: Any, limits: dict[str, int], depth: int, where: str) -> Schema:
        version = 3 if limits is _LIMITS[3] else 2
        if isinstance(schema, str):
            primitives = _V3_PRIMITIVES if version == 3 else _V2_PRIMITIVES
            if schema in primitives:
                return Schema(schema)
            if schema in _GEO:
                return Schema("geo")
            doc = self.schema_docs.get(schema)
            if doc is None:
                raise _parser_error(f"{owner}: {where}: unknown schema {schema!r}")
            return self._schema(owner, doc, limits, depth, where)
        if not isinstance(schema, dict):
            raise _parser_error(f"{owner}: {where}: schema is required")
        if depth > limits["depth"]:
            raise _parser_error(f"{owner}: {where}: complex schemas nested deeper than {limits['depth']}")
        kind = schema.get("@type")
        if kind == "Object":
            fields: dict[str, Schema] = {}
            for item in schema.get("fields", []) or []:
                if not isinstance(item, dict):
                    raise _parser_error(f"{owner}: {where}: an Object field is not an object")
                name = self._name(owner, item.get("name"), limits)
                if name in fields:
                    raise _parser_error(f"{owner}: {where}: duplicate Object field {name!r}")
                fields[name] = self._schema(owner, item.get("schema"), limits, depth + 1, f"{where}.{name}")
            return Schema("Object", fields=fields)
        if kind == "Map":
            key, value = schema.get("mapKey"), schema.get("mapValue")
            if not isinstance(key, dict) or key.get("schema") != "string" or not isinstance(value, dict):
                raise _parser_error(f"{owner}: {where}: a Map needs mapKey (schema string) and mapValue")
            self._name(owner, key.get("name"), limits)
            self._name(owner, value.get("name"), limits)
            return Schema("Map", item=self._schema(owner, value.get("schema"), limits, depth + 1, f"{where}.*"))
        if kind == "Enum":
            value_kind = schema.get("valueSchema")
            if value_kind not in ("integer", "string"):
                raise _parser_error(f"{owner}: {where}: Enum valueSchema must be integer or string")
            values: list[Any] = []
            for item in schema.get("enumValues", []) or []:
                if not isinstance(item, dict):
                    raise _parser_error(f"{owner}: {where}: an enumValue is not an object")
                self._name(owner, item.get("name"), limits)
                value = item.get("enumValue")
                ok = isinstance(value, str) if value_kind == "string" else (
                    isinstance(value, int) and not isinstance(value, bool))
                if not ok:
                    raise _parser_error(f"{owner}: {where}: enumValue {value!r} is not a {value_kind}")
                values.append(value)
            return Schema("Enum", enum_values=tuple(values), value_kind=value_kind)
        if kind == "Array":
            element = self._schema(owner, schema.get("elementSchema"), limits, depth + 1, f"{where}[]")
            return Schema("Array", item=element)
        raise _parser_error(f"{owner}: {where}: unknown complex schema {kind!r}")


# ---- the registry ----------------------------------------------------------------------------------------------
class Registry:
    """The uploaded interfaces. Not thread-safe by itself: the twin graph calls it under its lock."""

    def __init__(self) -> None:
        self.interfaces: dict[str, Interface] = {}
        self._resolved: dict[str, Resolved] = {}
        # Bumped on every change of the model set: readers that cache answers (the mapper's catalog, once per event)
        # compare one integer instead of resolving the model again.
        self.generation = 0

    # -- upload --
    def parse(self, documents: list[Any]) -> tuple[list[str], dict[str, Interface]]:
        """Validate a batch as ADT's model upload does (all or nothing) and return (top-level ids, every
        interface of the batch including inline ones) without registering anything."""
        if not isinstance(documents, list) or not documents:
            raise bad_request("InvalidArgument", "the request body must be a non-empty array of models")
        known_schemas: dict[str, dict[str, Any]] = {}
        for existing in self.interfaces.values():
            for schema_doc in existing.document.get("schemas", []) or []:
                if isinstance(schema_doc, dict) and isinstance(schema_doc.get("@id"), str):
                    known_schemas[schema_doc["@id"]] = schema_doc
        parser = _BatchParser(known_schemas)
        parser.parse(documents)
        for model_id in parser.interfaces:
            if model_id in self.interfaces:
                raise AdtError(409, "ModelAlreadyExists", f"model {model_id} already exists")
        # Resolve against the batch and the registry together: upload order within a batch does not matter.
        combined = {**self.interfaces, **parser.interfaces}
        for model_id, interface in parser.interfaces.items():
            for ref in [*interface.extends, *interface.components.values()]:
                if ref not in combined:
                    raise _parser_error(f"{model_id} references {ref}, which is neither uploaded nor in the request")
            for name, component in interface.components.items():
                if _flatten(combined, component, {}).components:
                    raise _parser_error(f"{model_id}: component {name!r} uses {component}, which has components")
        cache: dict[str, Resolved] = {}
        for model_id in parser.interfaces:
            _flatten(combined, model_id, cache)
        return parser.order, parser.interfaces

    def register(self, interfaces: dict[str, Interface]) -> None:
        self.interfaces.update(interfaces)
        self._resolved.clear()
        self.generation += 1

    def remove(self, model_id: str) -> None:
        self.interfaces.pop(model_id, None)
        self._resolved.clear()
        self.generation += 1

    # -- questions --
    def knows(self, model_id: str) -> bool:
        return model_id in self.interfaces

    def resolved(self, model_id: str) -> Resolved | None:
        if model_id not in self.interfaces:
            return None
        try:
            return _flatten(self.interfaces, model_id, self._resolved)
        except AdtError:
            return None  # a base was deleted after upload (ADT lets that happen only in order; be safe)

    def is_of_model(self, model_id: str, base: str) -> bool:
        resolved = self.resolved(model_id)
        return resolved is not None and base in resolved.ancestors

    def dependencies(self, model_id: str) -> list[str]:
        """The models ``model_id`` needs (extends and component schemas, transitively), itself excluded."""
        seen: list[str] = []
        stack = [model_id]
        while stack:
            current = self.interfaces.get(stack.pop())
            if current is None:
                continue
            for ref in [*current.extends, *current.components.values()]:
                if ref not in seen and ref != model_id:
                    seen.append(ref)
                    stack.append(ref)
        return seen

    def referenced_by(self, model_id: str) -> list[str]:
        return sorted(other.id for other in self.interfaces.values()
                      if other.id != model_id and model_id in [*other.extends, *other.components.values()])


def _flatten(interfaces: dict[str, Interface], model_id: str, cache: dict[str, Resolved],
             chain: tuple[str, ...] = ()) -> Resolved:
    cached = cache.get(model_id)
    if cached is not None:
        return cached
    if model_id in chain:
        raise _parser_error(f"extends cycle: {' → '.join([*chain, model_id])}")
    if len(chain) > _EXTENDS_DEPTH:
        raise _parser_error(f"{chain[0]}: extends deeper than {_EXTENDS_DEPTH}")
    interface = interfaces.get(model_id)
    if interface is None:
        raise _parser_error(f"{model_id} is not uploaded")
    properties: dict[str, Schema] = {}
    components: dict[str, str] = {}
    relationships: dict[str, Relationship] = {}
    others: set[str] = set(interface.others)
    ancestors: list[str] = [model_id]
    owners: dict[str, str] = {}

    def claim(name: str, owner: str) -> None:
        previous = owners.get(name)
        if previous is not None and previous != owner:
            raise _parser_error(f"{model_id}: {name!r} is declared by both {previous} and {owner}")
        owners[name] = owner

    for base_id in interface.extends:
        base = _flatten(interfaces, base_id, cache, (*chain, model_id))
        for ancestor in base.ancestors:
            if ancestor not in ancestors:
                ancestors.append(ancestor)
        for name in [*base.properties, *base.components, *base.relationships]:
            claim(name, base_id)
        properties.update(base.properties)
        components.update(base.components)
        relationships.update(base.relationships)
        others.update(interfaces[base_id].others)
    for name in [*interface.properties, *interface.components, *interface.relationships, *interface.others]:
        claim(name, model_id)
    properties.update(interface.properties)
    components.update(interface.components)
    relationships.update(interface.relationships)
    resolved = Resolved(model_id, tuple(ancestors), properties, components, relationships)
    cache[model_id] = resolved
    return resolved


# ---- values ----------------------------------------------------------------------------------------------------
def check_name(name: str, path: str) -> None:
    if len(name) * 4 > MAX_NAME_BYTES and len(name.encode()) > MAX_NAME_BYTES:
        raise validation_failed(f"{path}: property name longer than {MAX_NAME_BYTES} bytes", path)


def check_value(schema: Schema, value: Any, path: str) -> None:
    """Raise ValidationFailed (with ``path``) unless ``value`` is valid for ``schema``."""
    if value is None:
        return  # ADT stores an explicit null for any property (it reads back as null)
    kind = schema.kind
    if isinstance(value, str) and len(value) * 4 > MAX_STRING_BYTES and len(value.encode()) > MAX_STRING_BYTES:
        raise validation_failed(f"{path}: string longer than {MAX_STRING_BYTES} bytes", path)
    ok: bool
    # The kinds telemetry properties mostly have come first (the branches exclude each other: order is cost only).
    if kind in _FLOAT_KINDS:
        ok = (isinstance(value, float) and math.isfinite(value)) or (
            isinstance(value, int) and not isinstance(value, bool))
    elif kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "dateTime":
        ok = isinstance(value, str) and is_date_time(value)
    elif kind == "date":
        ok = isinstance(value, str) and _is_date(value)
    elif kind == "time":
        ok = isinstance(value, str) and _is_time(value)
    elif kind == "duration":
        ok = isinstance(value, str) and bool(_DURATION.match(value))
    elif kind == "uuid":
        ok = isinstance(value, str) and bool(_UUID.match(value))
    elif kind == "bytes":
        ok = isinstance(value, str) and _is_base64(value)
    elif kind == "geo":
        ok = isinstance(value, dict)
    elif kind == "Enum":
        ok = value in schema.enum_values and not isinstance(value, bool) and (
            isinstance(value, str) if schema.value_kind == "string" else isinstance(value, int))
    elif kind == "Object":
        if not isinstance(value, dict):
            ok = False
        else:
            for name, item in value.items():
                check_name(name, f"{path}/{name}")
                declared = schema.fields.get(name)
                if declared is None:
                    raise validation_failed(f"{path}: {name!r} is not a field of the Object schema",
                                            f"{path}/{name}")
                check_value(declared, item, f"{path}/{name}")
            ok = True
    elif kind == "Map":
        if not isinstance(value, dict):
            ok = False
        else:
            assert schema.item is not None
            for name, item in value.items():
                check_name(name, f"{path}/{name}")
                check_value(schema.item, item, f"{path}/{name}")
            ok = True
    elif kind == "Array":
        if not isinstance(value, list):
            ok = False
        else:
            assert schema.item is not None
            for index, item in enumerate(value):
                check_value(schema.item, item, f"{path}/{index}")
            ok = True
    else:
        ok = False
    if not ok:
        raise validation_failed(f"{path}: {_describe(value)} is not a valid {_schema_text(schema)}", path)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _schema_text(schema: Schema) -> str:
    if schema.kind == "Enum":
        return f"Enum value (one of {list(schema.enum_values)})"
    return schema.kind


def is_date_time(text: str) -> bool:
    match = _DATE_TIME.match(text)
    if match is None:
        return False
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        datetime(year, month, day, hour, minute, min(second, 59))  # RFC 3339 allows a leap second (60)
    except ValueError:
        return False
    return second <= 60


def _is_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_time(text: str) -> bool:
    match = _TIME.match(text)
    if match is None:
        return False
    hour, minute, second = (int(g) for g in match.groups()[:3])
    try:
        time(hour, minute, min(second, 59))
    except ValueError:
        return False
    return second <= 60


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def display_map(value: Any) -> dict[str, str] | None:
    """DTDL's displayName/description as the models API returns them: a language map (a plain string is 'en')."""
    if isinstance(value, str):
        return {"en": value}
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    return None


def iter_documents(documents: Iterable[Any]) -> list[Any]:
    """Flatten files that hold one interface or an array of them (how models are usually kept on disk)."""
    flat: list[Any] = []
    for document in documents:
        flat.extend(document if isinstance(document, list) else [document])
    return flat
