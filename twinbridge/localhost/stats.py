"""What the local host counts: invocations per function, pipeline outcomes and codes, output messages.

The pipeline counts come from a thin proxy around the app's ``Pipeline`` (every door calls
``current_app().pipeline.process``), so the host learns outcomes without the doors knowing about it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
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
        self.egress: Counter[str] = Counter()  # notifications, forwarded, duplicates, propagated, quarantined, retry
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

    def egress_batch(self, report: Any) -> None:
        """An ``EgressReport`` of the egress doors (shared/egress/router.py)."""
        counts = report.counts()
        with self._lock:
            self.egress.update({"notifications": len(report.results), "forwarded": report.sent,
                                "duplicates": counts.get("duplicate", 0)
                                + sum(1 for r in report.results if r.skipped and r.outcome.value != "duplicate"),
                                "propagated_writes": report.twin_writes, "quarantined": counts.get("quarantined", 0),
                                "retry": counts.get("retry", 0)})

    def output(self, key: str, count: int = 1) -> None:
        with self._lock:
            self.outputs[key] += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"invocations": dict(self.invocations), "failures": dict(self.failures),
                    "outcomes": dict(self.outcomes), "codes": dict(self.codes), "outputs": dict(self.outputs),
                    "twin_writes": self.twin_writes, "batches": self.batches, "egress": dict(self.egress)}


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


class CountingEgress:
    """Delegates to the app's egress router (built on first use, as the app does); records each report."""

    def __init__(self, build: Callable[[], Any], stats: HostStats) -> None:
        self._build = build
        self._inner: Any = None
        self._stats = stats
        self._lock = threading.Lock()

    def _router(self) -> Any:
        with self._lock:
            if self._inner is None:
                self._inner = self._build()
            return self._inner

    def process(self, events: Sequence[Any]) -> Any:
        report = self._router().process(events)
        self._stats.egress_batch(report)
        return report

    def process_amqp(self, messages: Sequence[Any]) -> Any:
        report = self._router().process_amqp(messages)
        self._stats.egress_batch(report)
        return report

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router(), name)
