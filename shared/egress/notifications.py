"""Azure Digital Twins change notifications: every wire form read into one CloudEvents-shaped record, validated.

ADT sends the same notification in three forms, depending on the endpoint (docs/azure-behaviour.md §1.3):

* Event Grid, Event Grid schema: ``eventType``, ``eventTime``, ``topic`` and a ``data`` that nests twice —
  ``data = {"data": <the payload>, "contenttype": …, "traceparent": …}``.
* Event Grid, CloudEvents 1.0 JSON: ``specversion``, ``type``, ``source``, ``time``, ``traceparent``, ``data``.
* Event Hubs / Service Bus, CloudEvents AMQP binding: the attributes are AMQP application properties named
  ``cloudEvents:<attr>`` (``cloudEvents_<attr>`` is accepted too: the AMQP binding allows both), the body is
  ``data``.

All three become a ``Notification`` whose ``cloudevent`` dict is what route filters are evaluated on and what a
``passthrough`` route forwards. Where the forms differ (Learn concepts-event-notifications, whose examples show each
type in each form; the ADT emulator emits them so):

* The Event Grid schema carries no ``source``: ``topic`` names the Event Grid topic, not the instance. The
  CloudEvents ``source`` is rebuilt from the instance's host name (``instance``, from ``ADT_URL``) — the instance
  for twin and relationship notifications, ``<instance>/digitaltwins/<twin id>`` for telemetry — so a route filter
  on ``source`` matches and the forwarding key (source + id) is the same whichever schema delivered the
  notification. Without ``instance`` the topic stands in (keys then differ between schemas).
* Telemetry: in Event Grid schema ``subject`` is the twin id; in CloudEvents ``subject`` is the component (absent
  for the twin itself) and the twin id ends ``source``. Telemetry has no ``time`` in CloudEvents and AMQP; its
  Event Grid ``eventTime`` is the placeholder ``0001-01-01T00:00:00Z``, which is not a time and is dropped.
* AMQP: ``cloudEvents:time`` may arrive as an AMQP timestamp (a ``datetime`` once decoded) rather than text.
* Relationship.Create/Delete bodies are the relationship as GET returns it; Learn's example has no ``$sourceId``,
  so the source twin is taken from ``subject`` (``<source>/relationships/<id>``) when the body lacks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from shared.errors import Code, PermanentError, Problem

TWIN_CREATE: Final = "Microsoft.DigitalTwins.Twin.Create"
TWIN_UPDATE: Final = "Microsoft.DigitalTwins.Twin.Update"
TWIN_DELETE: Final = "Microsoft.DigitalTwins.Twin.Delete"
RELATIONSHIP_CREATE: Final = "Microsoft.DigitalTwins.Relationship.Create"
RELATIONSHIP_UPDATE: Final = "Microsoft.DigitalTwins.Relationship.Update"
RELATIONSHIP_DELETE: Final = "Microsoft.DigitalTwins.Relationship.Delete"
TELEMETRY: Final = "microsoft.iot.telemetry"  # lower case, as ADT sends it
TWIN_TYPES: Final = frozenset({TWIN_CREATE, TWIN_UPDATE, TWIN_DELETE})
RELATIONSHIP_TYPES: Final = frozenset({RELATIONSHIP_CREATE, RELATIONSHIP_UPDATE, RELATIONSHIP_DELETE})
NOTIFICATION_TYPES: Final = TWIN_TYPES | RELATIONSHIP_TYPES | {TELEMETRY}

# CloudEvents attributes ADT sets; anything else found in the AMQP properties is kept as an extension.
ATTRIBUTES: Final = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
                     "traceparent")
AMQP_PREFIXES: Final = ("cloudEvents:", "cloudEvents_")
PATCH_OPS: Final = frozenset({"add", "replace", "remove"})
NO_TIME: Final = "0001-01-01T00:00:00"  # Event Grid schema telemetry's eventTime (Learn's example: …Z; +00:00 once
# the Functions binding has parsed and re-serialised it)


@dataclass(frozen=True, slots=True)
class Notification:
    """One validated ADT notification. ``cloudevent`` is the structured CloudEvents form (attributes + ``data``)."""

    cloudevent: dict[str, Any]
    schema: str  # "eventgrid" | "cloudevents" | "amqp": how it arrived

    @property
    def id(self) -> str:
        return str(self.cloudevent["id"])

    @property
    def source(self) -> str:
        return str(self.cloudevent["source"])

    @property
    def type(self) -> str:
        return str(self.cloudevent["type"])

    @property
    def subject(self) -> str:
        return str(self.cloudevent.get("subject") or "")

    @property
    def time(self) -> str | None:
        value = self.cloudevent.get("time")
        return value if isinstance(value, str) else None

    @property
    def data(self) -> Any:
        return self.cloudevent.get("data")

    @property
    def twin_id(self) -> str:
        """The twin the notification is about: the subject, or its part before ``/relationships/``."""
        if self.type in RELATIONSHIP_TYPES:
            return self.subject.split("/relationships/", 1)[0]
        if self.type == TELEMETRY:
            # telemetry's subject is a component path; the twin id ends the source (…/digitaltwins/<id> or …/<id>)
            if "/digitaltwins/" in self.source:
                return self.source.split("/digitaltwins/", 1)[1]
            return self.source.rstrip("/").rsplit("/", 1)[-1]
        return self.subject

    @property
    def forwarding_id(self) -> str:
        """source + id is unique per event (ADT's own guarantee), so it names one notification everywhere."""
        return f"{self.source}|{self.id}"


def from_amqp(properties: Mapping[Any, Any], body: bytes | str | None) -> dict[str, Any]:
    """The CloudEvents AMQP binding (attributes in application properties, body = data) as a structured dict.

    Property names may arrive as bytes (uamqp) or str; values as bytes too. The body is JSON when it parses as
    JSON (ADT always sends JSON), else it is kept as text.
    """
    event: dict[str, Any] = {}
    for raw_name, raw_value in properties.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        for prefix in AMQP_PREFIXES:
            if name.startswith(prefix):
                value = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
                if isinstance(value, datetime):  # an AMQP timestamp: RFC 3339 text, as the other forms carry
                    value = _rfc3339(value)
                event[name[len(prefix):]] = value
                break
    if body is not None and body != b"" and body != "":
        try:
            event["data"] = orjson.loads(body)
        except orjson.JSONDecodeError:
            event["data"] = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return event


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _from_eventgrid(raw: dict[str, Any], instance: str | None = None) -> dict[str, Any]:
    outer = raw.get("data")
    kind, subject = raw.get("eventType"), raw.get("subject")
    host = instance or raw.get("topic")
    time = raw.get("eventTime")
    event: dict[str, Any] = {"specversion": "1.0", "id": raw.get("id"), "source": host, "type": kind,
                             "subject": subject,
                             "time": None if isinstance(time, str) and time.startswith(NO_TIME) else time}
    if kind == TELEMETRY:
        # the twin id is the subject here; in CloudEvents it ends the source and subject is the component
        event["source"] = f"{host}/digitaltwins/{subject}" if isinstance(host, str) and isinstance(subject, str) \
            else host
        event["subject"] = None
    if isinstance(outer, dict) and "data" in outer:
        # ADT's envelope inside Event Grid's: the payload one level down, CloudEvents attributes beside it
        for name, value in outer.items():
            if name == "data":
                event["data"] = value
            elif name == "contenttype":
                event["datacontenttype"] = value
            else:
                event[name] = value
    else:
        event["data"] = outer
    return {k: v for k, v in event.items() if v is not None}


def to_cloudevent(raw: Any, instance: str | None = None) -> tuple[dict[str, Any], str]:
    """Any JSON form (Event Grid schema or CloudEvents) → (structured CloudEvent dict, schema name)."""
    if not isinstance(raw, dict):
        raise PermanentError.at(Code.NOT_AN_EVENT, "", f"a notification must be an object, not {type(raw).__name__}")
    if "specversion" in raw:
        return dict(raw), "cloudevents"
    if "eventType" in raw:
        return _from_eventgrid(raw, instance), "eventgrid"
    raise PermanentError.at(Code.NOT_AN_EVENT, "", "neither CloudEvents (specversion) nor Event Grid (eventType)")


def _need_text(event: Mapping[str, Any], name: str, problems: list[Problem]) -> None:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        problems.append(Problem(name, "required non-empty string"))


def _check_patch(data: dict[str, Any], problems: list[Problem]) -> None:
    patch = data.get("patch")
    if not isinstance(patch, list):
        problems.append(Problem("data.patch", "required JSON Patch array"))
        return
    for i, op in enumerate(patch):
        where = f"data.patch[{i}]"
        if not isinstance(op, dict):
            problems.append(Problem(where, "a patch operation must be an object"))
            continue
        if op.get("op") not in PATCH_OPS:
            problems.append(Problem(f"{where}.op", f"must be one of {sorted(PATCH_OPS)}"))
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            problems.append(Problem(f"{where}.path", "must be a JSON pointer starting with '/'"))
        if op.get("op") in ("add", "replace") and "value" not in op:
            problems.append(Problem(f"{where}.value", f"required for {op.get('op')}"))


def _check_data(kind: str, event: Mapping[str, Any], problems: list[Problem]) -> None:
    data = event.get("data")
    subject = event.get("subject")
    if kind == TELEMETRY:
        if "data" not in event:
            problems.append(Problem("data", "telemetry needs a payload"))
        return
    if not isinstance(data, dict):
        problems.append(Problem("data", "must be a JSON object"))
        return
    if kind == TWIN_UPDATE:
        if not isinstance(data.get("modelId"), str) or not data["modelId"]:
            problems.append(Problem("data.modelId", "required non-empty string"))
        _check_patch(data, problems)
    elif kind == RELATIONSHIP_UPDATE:
        _check_patch(data, problems)
    elif kind in TWIN_TYPES:
        twin_id = data.get("$dtId")
        if not isinstance(twin_id, str) or not twin_id:
            problems.append(Problem("data.$dtId", "required non-empty string"))
        elif isinstance(subject, str) and subject and twin_id != subject:
            raise PermanentError.at(Code.SUBJECT_MISMATCH, "data.$dtId", f"{twin_id!r} is not the subject {subject!r}")
        metadata = data.get("$metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("$model"), str):
            problems.append(Problem("data.$metadata.$model", "required string"))
    else:  # relationship create/delete: the relationship as GET returns it ($sourceId may be left out)
        for name in ("$relationshipId", "$targetId", "$relationshipName"):
            if not isinstance(data.get(name), str) or not data[name]:
                problems.append(Problem(f"data.{name}", "required non-empty string"))
        source_id = data.get("$sourceId")
        if source_id is not None and (not isinstance(source_id, str) or not source_id):
            problems.append(Problem("data.$sourceId", "a non-empty string when present"))
        if not problems and isinstance(subject, str) and subject:
            if source_id is None:
                ok = subject.endswith(f"/relationships/{data['$relationshipId']}") and \
                    not subject.startswith("/relationships/")
                expected = f"<source twin>/relationships/{data['$relationshipId']}"
            else:
                expected = f"{source_id}/relationships/{data['$relationshipId']}"
                ok = subject == expected
            if not ok:
                raise PermanentError.at(Code.SUBJECT_MISMATCH, "subject", f"{subject!r} is not {expected!r}")


def validate(event: dict[str, Any], schema: str) -> Notification:
    """Check the attributes every notification needs, then the data its type promises; PermanentError if not."""
    problems: list[Problem] = []
    for name in ("id", "source", "type"):
        _need_text(event, name, problems)
    if event.get("specversion") != "1.0":
        problems.append(Problem("specversion", "must be '1.0'"))
    if problems:
        raise PermanentError(Code.SCHEMA_INVALID, "not a valid notification envelope", tuple(problems))
    kind = event["type"]
    if kind not in NOTIFICATION_TYPES:
        raise PermanentError.at(Code.EVENT_TYPE_NOT_ALLOWED, "type", f"{kind!r} is not an Azure Digital Twins "
                                "notification type")
    if kind != TELEMETRY:
        _need_text(event, "subject", problems)
    elif "subject" in event and not isinstance(event["subject"], str):
        problems.append(Problem("subject", "must be a string (a component path) when present"))
    if "time" in event and not isinstance(event["time"], str):
        problems.append(Problem("time", "must be an RFC 3339 string"))
    if not problems:
        _check_data(kind, event, problems)
    if problems:
        raise PermanentError(Code.SCHEMA_INVALID, f"invalid {kind} notification", tuple(problems))
    return Notification(event, schema)


def read_notification(raw: Any, instance: str | None = None) -> Notification:
    """A notification in either JSON schema → validated ``Notification`` (PermanentError with a path if not).
    ``instance``: the ADT instance's host name, the ``source`` of what arrives in Event Grid schema."""
    event, schema = to_cloudevent(raw, instance)
    return validate(event, schema)


def read_amqp_notification(properties: Mapping[Any, Any], body: bytes | str | None) -> Notification:
    # the AMQP form carries ``source`` itself: no instance host to rebuild it from
    return validate(from_amqp(properties, body), "amqp")
