"""The error taxonomy: three kinds, three behaviours, stable codes.

* ``PermanentError`` — the event can never succeed as it is (bad input, foreign topic, model rejection). Never
  raised out of a door: the event is quarantined with its code and field path and the batch goes on.
* ``TransientError`` — the world may be better later (ADT throttling past the retry budget, storage down). Raised
  so the broker redelivers; everything already applied is safe to apply again.
* Stale and duplicate events are not errors at all: they are outcomes (``shared/outcome.py``), skipped and counted.
* The ports' errors (``TwinConflict``, ``TwinMissing``, ``TwinRejected``, ``StateConflict``) are how adapters tell
  the core what the outside world answered; the core decides what each means.

Codes are part of the public contract (quarantine records, logs, dashboards): never rename one, only add.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    # permanent: the input
    MALFORMED_JSON = "MALFORMED_JSON"
    NOT_AN_EVENT = "NOT_AN_EVENT"
    SCHEMA_INVALID = "SCHEMA_INVALID"
    EVENT_TOO_LARGE = "EVENT_TOO_LARGE"
    TOPIC_NOT_ALLOWED = "TOPIC_NOT_ALLOWED"
    EVENT_TYPE_NOT_ALLOWED = "EVENT_TYPE_NOT_ALLOWED"
    SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
    BODY_NOT_BASE64 = "BODY_NOT_BASE64"
    BODY_NOT_JSON = "BODY_NOT_JSON"
    VALUE_TOO_LARGE = "VALUE_TOO_LARGE"
    MAPPING_FAILED = "MAPPING_FAILED"
    # issue 15: a value no JSON reader/writer of ours can carry (NaN/Infinity, integer beyond 64 bits, lone
    # surrogate, nesting deeper than orjson's 254 levels, a non-JSON type), wherever it is; an ordering timestamp
    # beyond now + the allowed clock skew; intake code that failed on this input (a bug, but never the batch's)
    UNSUPPORTED_VALUE = "UNSUPPORTED_VALUE"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    INTAKE_FAILED = "INTAKE_FAILED"
    DEAD_LETTERED = "DEAD_LETTERED"  # Event Grid gave up delivering it (its dead-letter blob, collected: issue 15)
    # permanent: the twin side
    TWIN_NOT_FOUND = "TWIN_NOT_FOUND"
    TWIN_REJECTED = "TWIN_REJECTED"
    # transient
    ADT_THROTTLED = "ADT_THROTTLED"
    ADT_UNAVAILABLE = "ADT_UNAVAILABLE"
    STATE_UNAVAILABLE = "STATE_UNAVAILABLE"
    TWIN_NOT_READY = "TWIN_NOT_READY"
    CONFLICT_RETRIES_EXHAUSTED = "CONFLICT_RETRIES_EXHAUSTED"
    REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"  # the IoT Hub registry (reconcile) cannot be queried
    TIME_BUDGET_SPENT = "TIME_BUDGET_SPENT"  # the invocation's time budget ran out before this twin was written
    # egress (issue #5): a sink refused one message for good / a sink or the forwarding store is unreachable
    DELIVERY_REJECTED = "DELIVERY_REJECTED"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    SINK_UNAVAILABLE = "SINK_UNAVAILABLE"
    FORWARDING_UNAVAILABLE = "FORWARDING_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, located by a dotted field path (``data.twin.version``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class TwinbridgeError(Exception):
    """Base of every error the app raises on purpose."""

    code: Code

    def __init__(self, code: Code, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = problems

    @property
    def path(self) -> str:
        """The first offending field path ('' when the error is not about one field)."""
        return self.problems[0].path if self.problems else ""

    def __str__(self) -> str:
        if not self.problems:
            return f"{self.code}: {self.message}"
        listed = "; ".join(str(p) for p in self.problems)
        return f"{self.code}: {self.message} ({listed})"


class PermanentError(TwinbridgeError):
    """The event cannot succeed as it is: quarantine it, never retry it."""

    @classmethod
    def at(cls, code: Code, path: str, message: str) -> PermanentError:
        return cls(code, message, (Problem(path, message),))


class TransientError(TwinbridgeError):
    """Retry later: raised out of the door so the broker redelivers the batch."""


class ConfigError(ValueError):
    """The app's configuration is invalid; raised at start-up with every problem listed."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration in {source}:\n{lines}")


# ---- the ports' errors (raised by adapters, see shared/ports.py) ---------------------------------------------

class TwinConflict(Exception):
    """412 Precondition Failed (If-Match / If-None-Match): someone else wrote first. Re-read and decide again."""


class TwinMissing(Exception):
    """404 DigitalTwinNotFound on a write that needed the twin."""


class TwinRejected(Exception):
    """400 from the twin service (ValidationFailed, JsonPatchInvalid, …): the write can never succeed as it is."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StateConflict(Exception):
    """The state record changed (or appeared) since it was read. Re-read and decide again."""
