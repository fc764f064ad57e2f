"""What happened to one event: the outcome every door counts and logs (not an error: see shared/errors.py)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What happened to one event."""

    APPLIED = "applied"
    STALE = "stale"
    DUPLICATE = "duplicate"
    FILTERED = "filtered"
    QUARANTINED = "quarantined"
    RETRY = "retry"
