"""The cyclic garbage collector, set for batch throughput (docs/performance.md, "Garbage collection").

A batch's per-event objects (parsed events, intents, results) all live until the batch ends. With CPython's default
thresholds (700, 10, 10) a 1,000-event batch sets off dozens of young collections that traverse those objects, and
the survivors, promoted, set off full collections that traverse the whole heap: the benchmark measured ~10 % of the
core pipeline in the collector. A first threshold well above one batch's objects lets them die by reference counting
before any collection sees them, and freezing what exists once the app is built (modules, SDK clients, config)
keeps it out of every later full collection.

What it costs: only *cyclic* garbage waits longer for a collection (reference counting still frees everything else
at once), so memory is unchanged for practical purposes. ``TWINBRIDGE_GC_GEN0=0`` keeps Python's defaults.
"""

from __future__ import annotations

import gc
import threading

DEFAULT_GEN0_THRESHOLD = 50_000
_frozen = False
_lock = threading.Lock()


def tune_gc(gen0: int) -> tuple[int, int, int]:
    """Set the first-generation threshold to ``gen0`` (0 or less: leave the collector as it is) and, the first time,
    freeze the objects that exist now. Returns the thresholds in force."""
    global _frozen
    if gen0 > 0:
        with _lock:
            _, second, third = gc.get_threshold()
            gc.set_threshold(gen0, second, third)
            if not _frozen:
                gc.freeze()
                _frozen = True
    return gc.get_threshold()
