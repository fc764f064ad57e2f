"""The egress part of the app config: ``endpoints``, ``routes`` and ``propagation`` sections, validated at start-up.

```yaml
endpoints:
  timeseries: {kind: eventhub, namespace: my-ns.servicebus.windows.net, eventhub: twin-changes}
  workflow:   {kind: servicebus, namespace: my-sb.servicebus.windows.net, topic: twin-changes, sessions: true}
  maps:       {kind: eventgrid, endpoint: "https://my-topic.westeurope-1.eventgrid.azure.net/api/events"}
  local:      {kind: file, path: .run/egress.jsonl}
routes:
  - name: temperatures
    filter: "type = 'Microsoft.DigitalTwins.Twin.Update' AND $body.modelId = 'dtmi:example:Room;1'"
    endpoint: timeseries
    transform: property-changes
propagation:
  - name: floor-temperature
    filter: "type = 'Microsoft.DigitalTwins.Twin.Update' AND $body.modelId = 'dtmi:example:Room;1'"
    relationship: contains
    source: /Temperature
    target: /AverageTemperature
    mode: avg
```

Every problem is reported with its path (``routes[2].filter: unexpected 'AN' at position 31``) in one
``ConfigError``. Filters are compiled here, once. Secrets never live in this file: an endpoint may name an app
setting (``connection_setting``, ``key_setting``) that holds a connection string or key for local runs; without
one, the sink authenticates with ``DefaultAzureCredential`` (managed identity in Azure).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import ConfigError, Problem
from shared.filters.adt_route import RouteFilter, compile_route_filter

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class Transform(StrEnum):
    PASSTHROUGH = "passthrough"  # the CloudEvent as received
    PROPERTY_CHANGES = "property-changes"  # one record per changed property of a Twin.Update patch


class Mode(StrEnum):
    COPY = "copy"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventHubEndpoint(_Strict):
    kind: Literal["eventhub"]
    namespace: str | None = None  # fully qualified: <ns>.servicebus.windows.net (managed identity)
    eventhub: str = Field(min_length=1)
    connection_setting: str | None = None  # app setting holding a connection string (local runs only)


class ServiceBusEndpoint(_Strict):
    kind: Literal["servicebus"]
    namespace: str | None = None
    topic: str | None = None
    queue: str | None = None
    sessions: bool = False  # session id = twin id: ordered per twin for session-enabled entities
    connection_setting: str | None = None

    @model_validator(mode="after")
    def _one_entity(self) -> ServiceBusEndpoint:
        if (self.topic is None) == (self.queue is None):
            raise ValueError("give exactly one of topic or queue")
        return self


class EventGridEndpoint(_Strict):
    kind: Literal["eventgrid"]
    endpoint: str = Field(pattern=r"^https?://")
    schema_: Literal["cloudevents", "eventgrid"] = Field("cloudevents", alias="schema")
    key_setting: str | None = None  # app setting holding the topic access key; none → Entra (DefaultAzureCredential)


class FileEndpoint(_Strict):
    kind: Literal["file"]
    path: str = Field(min_length=1)


class WebhookEndpoint(_Strict):
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(10.0, gt=0, le=120)


Endpoint = Annotated[EventHubEndpoint | ServiceBusEndpoint | EventGridEndpoint | FileEndpoint | WebhookEndpoint,
                     Field(discriminator="kind")]


def _compile(text: str) -> RouteFilter:
    try:
        return compile_route_filter(text)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _parses(text: str) -> str:
    _compile(text)
    return text


FilterText = Annotated[str, AfterValidator(_parses)]  # an ADT route filter, checked when the config loads


class Route(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    filter: FilterText
    endpoint: str
    transform: Transform = Transform.PASSTHROUGH


class PropagationRule(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    filter: FilterText  # which children's Twin.Update notifications trigger the rule (route filter syntax)
    relationship: str = Field(min_length=1)  # name of the parent → child relationship
    source: str = Field(pattern=r"^/[^/$][^$]*$")  # child property, JSON pointer (/Temperature, /comp/prop)
    target: str = Field(pattern=r"^/[^/$][^$]*$")  # parent property
    mode: Mode = Mode.COPY
    max_hops: int = Field(3, ge=0, le=16)  # how far a chain of propagated updates may climb (loop guard)


class EgressSections(_Strict):
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    propagation: list[PropagationRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> EgressSections:
        problems: list[str] = []
        for kind, names in (("routes", [r.name for r in self.routes]),
                            ("propagation", [r.name for r in self.propagation])):
            seen: set[str] = set()
            for i, name in enumerate(names):
                if name in seen:
                    problems.append(f"{kind}[{i}].name: duplicate name {name!r}")
                seen.add(name)
        for i, route in enumerate(self.routes):
            if route.endpoint not in self.endpoints:
                known = ", ".join(sorted(self.endpoints)) or "none defined"
                problems.append(f"routes[{i}].endpoint: unknown endpoint {route.endpoint!r} (endpoints: {known})")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class CompiledRoute:
    """A route with its filter compiled once."""

    __slots__ = ("config", "endpoint", "filter", "name", "transform")

    def __init__(self, config: Route) -> None:
        self.config = config
        self.name = config.name
        self.endpoint = config.endpoint
        self.transform = config.transform
        self.filter = compile_route_filter(config.filter)


class CompiledRule:
    __slots__ = ("config", "filter")

    def __init__(self, config: PropagationRule) -> None:
        self.config = config
        self.filter = compile_route_filter(config.filter)


class EgressConfig:
    def __init__(self, sections: EgressSections) -> None:
        self.sections = sections
        self.endpoints = dict(sections.endpoints)
        self.routes = [CompiledRoute(r) for r in sections.routes]
        self.rules = [CompiledRule(r) for r in sections.propagation]


def _path(loc: tuple[Any, ...]) -> str:
    if len(loc) >= 3 and loc[0] == "endpoints":
        loc = loc[:2] + loc[3:]  # endpoints.<name>.<kind>.<field>: the union's branch (kind) is noise in a path
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_egress(sections: dict[str, Any], source: str = "<config>") -> EgressConfig:
    """``AppConfig.sections`` (or any mapping) → ``EgressConfig``; ``ConfigError`` listing every problem."""
    data = {k: sections[k] for k in ("endpoints", "routes", "propagation") if sections.get(k) is not None}
    try:
        return EgressConfig(EgressSections.model_validate(data))
    except ValidationError as exc:
        problems: list[Problem] = []
        for err in exc.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            if not err["loc"]:  # cross-reference problems: already "path: message" lines
                for line in message.splitlines():
                    path, _, text = line.partition(": ")
                    problems.append(Problem(path, text))
                continue
            problems.append(Problem(_path(tuple(err["loc"])), message))
        raise ConfigError(source, problems) from None
