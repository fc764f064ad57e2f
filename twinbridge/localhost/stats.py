"""What the local host counts: invocations per function, pipeline outcomes and codes, output messages.

The pipeline counts come from a thin proxy around the app's ``Pipeline`` (every door calls
``current_app().pipeline.process``), so the host learns outcomes without the doors knowing about it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from shared.twins.pipeline import BatchReport, Pipeline


class HostStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.invocations: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.outputs: Counter[str] = Counter()
        self.twin_writes = 0
        self.batches = 0  # pipeline batches (a group commit makes one for many trigger invocations)

    def invocation(self, function: str, ok: bool) -> None:
        with self._lock:
            self.invocations[function] += 1
            if not ok:
                self.failures[function] += 1

    def batch(self, report: BatchReport) -> None:
        with self._lock:
            self.outcomes.update({k: v for k, v in report.counts().items() if v})
            self.codes.update(report.codes())
            self.twin_writes += report.twin_writes
            self.batches += 1

    def output(self, key: str, count: int = 1) -> None:
        with self._lock:
            self.outputs[key] += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"invocations": dict(self.invocations), "failures": dict(self.failures),
                    "outcomes": dict(self.outcomes), "codes": dict(self.codes), "outputs": dict(self.outputs),
                    "twin_writes": self.twin_writes, "batches": self.batches}


class CountingPipeline:
    """Delegates to the real pipeline; records each batch report in ``HostStats``."""

    def __init__(self, inner: Pipeline, stats: HostStats) -> None:
        self._inner = inner
        self._stats = stats

    def process(self, events: Sequence[Any], sizes: Sequence[int | None] | None = None) -> BatchReport:
        report = self._inner.process(events, sizes)
        self._stats.batch(report)
        return report

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
