"""shared/settings/gc_tuning.py: the raised threshold cannot let cyclic garbage from large inputs pile up
(issue 15 §3)."""

from __future__ import annotations

import gc
import weakref

import pytest

from shared.settings import gc_tuning


class _Big:
    """One large event caught in a reference cycle (as a kept traceback would hold it)."""

    def __init__(self) -> None:
        self.payload = bytearray(1_000_000)
        self.me = self


@pytest.fixture
def tuned():
    before = gc.get_threshold()
    enabled = gc.isenabled()
    gc.enable()
    gc.collect()
    gc.set_threshold(gc_tuning.DEFAULT_GEN0_THRESHOLD, before[1], before[2])
    yield
    gc.set_threshold(*before)
    if not enabled:
        gc.disable()


def _live_after(events: int, note: bool) -> int:
    alive: weakref.WeakSet[_Big] = weakref.WeakSet()
    for _ in range(events):
        big = _Big()
        alive.add(big)
        del big
        if note:
            gc_tuning.note_input(1_000_000, every=16_000_000)
    return len(alive)


def test_without_the_byte_bound_cycles_of_large_events_pile_up(tuned):
    assert _live_after(200, note=False) > 150  # the object threshold alone: ~200 MB waiting


def test_the_byte_bound_keeps_them_under_the_budget(tuned):
    assert _live_after(200, note=True) <= 17


def test_note_input_collects_only_past_the_budget():
    gc_tuning.note_input(0, every=0)  # resets the count other tests and doors left
    assert gc_tuning.note_input(5, every=10) is False
    assert gc_tuning.note_input(5, every=10) is True
    assert gc_tuning.note_input(9, every=10) is False
