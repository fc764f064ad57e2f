"""The cyclic garbage collector, set for batch throughput, with a bound on what large events can leave behind
(docs/performance.md, "Garbage collection" and "Memory").

A batch's per-event objects (parsed events, intents, results) all live until the batch ends. With CPython's default
thresholds (700, 10, 10) a 1,000-event batch sets off dozens of young collections that traverse those objects, and
the survivors, promoted, set off full collections that traverse the whole heap: the benchmark measured ~10 % of the
core pipeline in the collector. A first threshold well above one batch's objects lets them die by reference counting
before any collection sees them, and freezing what exists once the app is built (modules, SDK clients, config)
keeps it out of every later full collection.

What it cost (issue 15 §3, measured): *cyclic* garbage waits for a collection, and the threshold counts objects, not
bytes. A large event makes few objects but many bytes, so one reference cycle per event that holds the event (two
were found: azure.functions' Event Grid converter, werkzeug's request in the local host) let the Event Grid trigger
door reach 0.98 GB over 1,000 events of 950 KB before a collection — 2.4 GB in the issue's run. Both cycles are gone
(the door binds the raw text; the host breaks the request's cycle), which alone brings the run to ~70 MB; the
threshold stays for the throughput it buys. What bounds memory whatever cycle comes next: the doors report the
bytes they were delivered (``note_input``), and after every ``COLLECT_EVERY_BYTES`` of input the two younger
generations are collected (where a finished invocation's cyclic garbage is, also when a collection during the
invocation promoted it once) — not the whole heap: a few ms, once per 32 MB.

``TWINBRIDGE_GC_GEN0=0`` keeps Python's defaults (the byte bound still applies; it is harmless there).
"""

from __future__ import annotations

import gc
import threading

DEFAULT_GEN0_THRESHOLD = 50_000
COLLECT_EVERY_BYTES = 32 * 1024 * 1024
_frozen = False
_lock = threading.Lock()
_input_bytes = 0


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


def note_input(size: int, every: int = COLLECT_EVERY_BYTES) -> bool:
    """A door was delivered ``size`` bytes. Past ``every`` bytes since the last time, collect the two younger
    generations so cyclic garbage cannot pile up by the hundreds of MB. True if a collection ran."""
    global _input_bytes
    with _lock:
        _input_bytes += max(size, 0)
        if _input_bytes < every:
            return False
        _input_bytes = 0
    if gc.isenabled():
        gc.collect(1)
    return True
