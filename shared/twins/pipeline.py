"""The pipeline: a batch of raw events in, one outcome per event out, twins written through the ports.

Every door (Event Grid trigger, HTTP webhook, Event Hubs, replay CLI, local host) calls ``Pipeline.process``.
Permanent failures are quarantined here and never raised; transient ones are reported, and the door decides
how to make the broker redeliver (``BatchReport.raise_if_transient``).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, cast

from shared.errors import Code, PermanentError, TransientError, TwinbridgeError, TwinMissing, TwinRejected
from shared.ingest.intake import Accepted, FilterCheck, Intake
from shared.ingest.mapping import Mapper
from shared.ingest.model_types import NO_MODELS, ModelTypes
from shared.outcome import Outcome
from shared.ports import Quarantine, QuarantineRecord, StateStore, TwinStore, in_process
from shared.quarantine_record import build_record
from shared.settings.app_config import AppConfig
from shared.twins import deadline
from shared.twins.applier import Decision, Projection, TwinApplier, WriteTally
from shared.twins.deadline import INVOCATION_BUDGET_SECONDS, invocation_budget
from shared.twins.freshness import Intent

log = logging.getLogger("twinbridge.pipeline")

DEFAULT_MAX_CONCURRENCY = 16  # twins written at once per batch; ADT latency, not CPU, is what this hides


@dataclass(slots=True)
class EventResult:
    index: int
    event_id: str | None
    event_type: str | None
    outcome: Outcome
    twin_id: str | None = None
    code: str | None = None
    path: str = ""
    message: str = ""


@dataclass
class BatchReport:
    results: list[EventResult] = field(default_factory=list)
    twin_writes: int = 0

    def counts(self) -> dict[str, int]:
        counter = Counter([r.outcome.value for r in self.results])
        return {o.value: counter.get(o.value, 0) for o in Outcome}

    def codes(self) -> dict[str, int]:
        return dict(Counter([r.code for r in self.results if r.code]))

    @property
    def transient(self) -> list[EventResult]:
        return [r for r in self.results if r.outcome is Outcome.RETRY]

    def raise_if_transient(self) -> None:
        """Raise so the broker redelivers: applied events will be no-ops the second time."""
        retry = self.transient
        if retry:
            codes = sorted({r.code or Code.ADT_UNAVAILABLE for r in retry})
            raise TransientError(Code(codes[0]), f"{len(retry)} event(s) must be redelivered ({', '.join(codes)})")


class Pipeline:
    def __init__(self, config: AppConfig, twins: TwinStore, state: StateStore, quarantine: Quarantine, *,
                 catalog: ModelTypes | None = None, event_filter: FilterCheck | None = None,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, known_twins: int = 0) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.config = config
        self.budget_seconds = INVOCATION_BUDGET_SECONDS  # per process() call: under Event Grid's 30 s
        self.max_concurrency = max_concurrency
        # Helper threads only where calls wait on I/O (ADT, Table Storage): see shared.ports.in_process.
        self._helpers = 0 if in_process(twins) and in_process(state) else max_concurrency - 1
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # Quarantine writes: on the calling thread for an in-memory quarantine, else on their own pool (so a hung
        # quarantine cannot occupy the threads that write twins) and awaited within the deadline (_QuarantineWrites).
        self._quarantine_inline = in_process(quarantine)
        self._quarantine_pool: ThreadPoolExecutor | None = None
        self.catalog: ModelTypes = catalog if catalog is not None else NO_MODELS
        self.mapper = Mapper(config, self.catalog)
        self.intake = Intake(config, self.mapper, event_filter)
        self.quarantine = quarantine
        self.applier = TwinApplier(twins, state, Projection(
            connection_path=self.mapper.connection_path,
            connection_values={True: config.connection.connected, False: config.connection.disconnected},
            policy=config.missing_twin,
            max_patch_bytes=config.limits.max_patch_bytes,
        ), known_twins=known_twins)

    def process(self, events: Sequence[Any], sizes: Sequence[int | None] | None = None) -> BatchReport:
        """One invocation's batch, within one time budget (shared/twins/deadline.py)."""
        with invocation_budget(self.budget_seconds):
            return self._process(events, sizes)

    def _process(self, events: Sequence[Any], sizes: Sequence[int | None] | None) -> BatchReport:
        results: list[EventResult | None] = [None] * len(events)
        quarantined = _QuarantineWrites(self)
        # twin id -> (model id, indexes of its events in the batch, their intake results), in batch order.
        # Parallel lists and string keys: a batch's per-event objects all live until it ends, and each one the
        # GC tracks makes its collections costlier (the benchmark measured ~15 % of the core in the GC).
        groups: dict[str, tuple[str, list[int], list[Accepted]]] = {}
        seen: set[str] = set()
        lowered: dict[str, str] = {}
        accept = self.intake.accept
        not_after = self.intake.not_after()  # one clock read per batch: a batch is delivered at one moment
        for index, raw in enumerate(events):
            try:
                accepted = accept(raw, sizes[index] if sizes else None, not_after)
            except PermanentError as exc:
                results[index] = quarantined.add(index, raw, exc)
                continue
            except Exception as failure:
                # Not a known kind of bad input: a gap in intake's checks. Logged with its traceback to be fixed,
                # and the event quarantined (replayable once fixed) instead of taking its neighbours down.
                log.exception("intake failed on event %d of the batch", index)
                gap = PermanentError.at(Code.INTAKE_FAILED, "", f"intake failed: {type(failure).__name__}")
                results[index] = quarantined.add(index, raw, gap)
                continue
            envelope = accepted.envelope
            if not isinstance(accepted, Accepted):
                results[index] = EventResult(index, envelope.id, envelope.event_type, Outcome.FILTERED,
                                             message=accepted.reason)
                continue
            topic = lowered.get(envelope.topic)
            if topic is None:
                topic = lowered[envelope.topic] = envelope.topic.lower()
            key = f"{topic}\n{envelope.id}"  # the same event twice: same id from the same (case-insensitive) topic
            if key in seen:
                results[index] = EventResult(index, envelope.id, envelope.event_type, Outcome.DUPLICATE,
                                             accepted.target.twin_id)
                continue
            seen.add(key)
            target = accepted.target
            group = groups.get(target.twin_id)
            if group is None:
                group = groups[target.twin_id] = (target.model_id, [], [])
            group[1].append(index)
            group[2].append(accepted)

        # Twins are independent: several are written at once (each twin's intents stay together, in order, in
        # one apply call). Results and quarantine records are made here, on the calling thread.
        work = list(groups.items())
        applied = self._apply_all(work)
        writes = 0
        for (twin_id, (_, indexes, members)), (decisions, count) in zip(work, applied, strict=True):
            writes += count
            for index, accepted, decision in zip(indexes, members, decisions, strict=True):
                envelope = accepted.envelope
                error = decision.error
                if error is None:
                    results[index] = EventResult(index, envelope.id, envelope.event_type, decision.outcome, twin_id)
                elif isinstance(error, PermanentError):
                    results[index] = quarantined.add(index, events[index], error, twin_id)
                else:
                    results[index] = EventResult(index, envelope.id, envelope.event_type, decision.outcome, twin_id,
                                                 str(error.code), message=error.message)

        quarantined.finish()  # raises when a record is not surely written: the batch must come again
        missing = [i for i, result in enumerate(results) if result is None]  # `is`: `None in` calls __eq__ per item
        if missing:
            raise RuntimeError(f"no outcome for event(s) {missing[:10]} of the batch")  # a bug, never bad input
        return BatchReport(cast(list[EventResult], results), writes)  # the door logs it (shared/observability.py)

    def reject(self, raw: Any, error: TwinbridgeError, index: int = 0) -> EventResult:
        """Quarantine something that never became an event (e.g. a line of a stream that is not JSON)."""
        return self.reject_all([(index, raw, error)])[0]

    def reject_all(self, rejected: Sequence[tuple[int, Any, TwinbridgeError]]) -> list[EventResult]:
        """Quarantine several such things (index, raw, error) at once, under one time budget as ``process``."""
        with invocation_budget(self.budget_seconds):
            quarantined = _QuarantineWrites(self)
            results = [quarantined.add(index, raw, error) for index, raw, error in rejected]
            quarantined.finish()
            return results

    def _apply_all(self, work: list[tuple[str, tuple[str, list[int], list[Accepted]]]]
                   ) -> list[tuple[list[Decision], int]]:
        """Apply every twin's group: up to ``max_concurrency`` twins at a time (the calling thread included) when
        a store does I/O, else all on the calling thread (``_helpers``, set from ``shared.ports.in_process``).

        Helpers and the calling thread take the next twin from one queue until it is empty. One pool task per helper
        rather than per twin, and the caller working too: with a fast twin store most twins are done before a helper
        wakes (a hand-off per twin cost ~5 us/event in the benchmark); with a slow one (ADT, ~20 ms a call)
        ``max_concurrency`` twins are in flight at once, as with one task per twin.
        """
        applied: list[tuple[list[Decision], int] | None] = [None] * len(work)
        pending = deque(range(len(work)))

        def drain() -> None:
            while True:
                try:
                    i = pending.popleft()  # atomic: helpers never take the same twin
                except IndexError:
                    return
                applied[i] = self._apply_group(*work[i])

        helpers = min(self._helpers, len(work) - 1)
        # Each helper in a copy of this thread's context: the invocation's deadline must reach it.
        futures = [self._executor().submit(contextvars.copy_context().run, drain) for _ in range(helpers)]
        try:
            drain()
        finally:
            for future in futures:
                future.result()  # waits for every helper; re-raises what one could not handle
        return cast(list[tuple[list[Decision], int]], applied)

    def _apply_group(self, twin_id: str, group: tuple[str, list[int], list[Accepted]]) -> tuple[list[Decision], int]:
        model_id, _, members = group
        intents: list[Intent] = [a.intent for a in members]
        tally = WriteTally()
        try:
            return self.applier.apply(twin_id, model_id, intents, tally), tally.count
        except TransientError as exc:
            log.warning("twin %s: transient failure, %d event(s) to redeliver: %s", twin_id, len(members), exc)
            return [Decision(Outcome.RETRY, exc)] * len(members), tally.count
        except (TwinRejected, TwinMissing) as exc:
            # E.g. 400 InvalidArgument on reading the twin (an id the service refuses): permanent for these events.
            error = PermanentError.at(Code.TWIN_REJECTED, "", f"Digital Twins refused {twin_id!r}: {exc}")
            return [Decision(Outcome.QUARANTINED, error)] * len(members), tally.count

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="twinbridge-apply")
            return self._pool

    def _quarantine_executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._quarantine_pool is None:
                self._quarantine_pool = ThreadPoolExecutor(self.max_concurrency,
                                                           thread_name_prefix="twinbridge-quarantine")
            return self._quarantine_pool

    def _put(self, record: QuarantineRecord, error: TwinbridgeError) -> None:
        self.quarantine.put(record)
        log.warning("quarantined event %s (%s) code=%s path=%s: %s", record.event_id, record.event_type,
                    record.code, error.path, error.message)


class _QuarantineWrites:
    """One batch's quarantine writes (issue 15 §4): each starts as soon as its event is known to be poison, up to
    ``max_concurrency`` at once, while the batch goes on (the twins are written meanwhile); ``finish`` waits for
    them, but never past the invocation's deadline.

    Sequential writes made N poison events cost N × the quarantine's latency: against a slow store a batch could
    not be quarantined within its budget, came again, and again. The storage clients cut each attempt to the time
    left (shared/adapters/storage_calls.py), but an adapter without such a transport (a file on a hung disk) could
    block a door forever; so the wait itself is bounded here, whatever the adapter.

    A write that failed or did not finish in time makes ``finish`` raise: the batch comes again rather than losing a
    poison event (the twins written meanwhile are duplicates then; records are idempotent per event and code). A
    write still running then is left to end on its own (the storage clients give up at the deadline).
    """

    __slots__ = ("_futures", "_pipeline")

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._futures: list[Future[None]] = []

    def add(self, index: int, raw: Any, error: TwinbridgeError, twin_id: str | None = None) -> EventResult:
        pipeline = self._pipeline
        record = build_record(raw, error, twin_id=twin_id)
        if pipeline._quarantine_inline:
            pipeline._put(record, error)
        else:
            # In a copy of this thread's context: the invocation's deadline must reach the storage client.
            self._futures.append(pipeline._quarantine_executor().submit(
                contextvars.copy_context().run, pipeline._put, record, error))
        return EventResult(index, record.event_id, record.event_type, Outcome.QUARANTINED, twin_id,
                           code=record.code, path=error.path, message=error.message)

    def finish(self) -> None:
        if not self._futures:
            return
        left = deadline.remaining()
        _, late = wait(self._futures, timeout=None if left is None else max(0.0, left))
        if late:
            for future in late:
                future.cancel()  # not started yet: it would only fail on the spent budget
            raise TransientError(Code.TIME_BUDGET_SPENT,
                                 f"{len(late)} of {len(self._futures)} quarantine write(s) did not finish within the "
                                 "invocation's time budget")
        for future in self._futures:
            failure = future.exception()
            if failure is not None:
                raise failure  # e.g. TransientError(STATE_UNAVAILABLE): the quarantine store is down
