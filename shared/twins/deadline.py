"""The invocation's time budget, visible to everything that runs for it (retry policies, the applier).

An Event Grid delivery waits 30 s for an answer; past that it redelivers, and the late first attempt is wasted
work racing its own duplicate. So one invocation gets a budget (``INVOCATION_BUDGET_SECONDS``) shared by every
call it makes: azure-core's retries never wait past it, and the applier starts no new round after it — the
events go back to the broker as transient, to be redelivered (applying twice is harmless).

A ``ContextVar`` so concurrent invocations (threads of the local host, the worker) each see their own deadline.
It does not flow into executor threads by itself: submit work with ``contextvars.copy_context().run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

INVOCATION_BUDGET_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class _Deadline:
    at: float
    clock: Callable[[], float]

    def remaining(self) -> float:
        return self.at - self.clock()


_current: ContextVar[_Deadline | None] = ContextVar("twinbridge_invocation_deadline", default=None)


@contextmanager
def invocation_budget(seconds: float = INVOCATION_BUDGET_SECONDS,
                      clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Everything inside shares one deadline, ``seconds`` from now (a nested, tighter budget wins)."""
    outer = _current.get()
    mine = _Deadline(clock() + seconds, clock)
    if outer is not None and outer.remaining() < seconds:
        mine = outer
    token = _current.set(mine)
    try:
        yield
    finally:
        _current.reset(token)


def remaining() -> float | None:
    """Seconds left in the current invocation's budget (None outside any)."""
    deadline = _current.get()
    return None if deadline is None else deadline.remaining()


def expired() -> bool:
    left = remaining()
    return left is not None and left <= 0
