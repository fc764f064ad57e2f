"""Interleavings of two writers on one twin, staged deterministically with gates (see shared/twins/applier.py, step 3).

Each test pauses one instance inside a port call, lets the other run, then releases the first. Before step 3
existed, the first two ended with a regressed twin (a stale PATCH/DELETE succeeding because the newer writer had
nothing to write and left the ETag alone), and the third with a newer writer trusting a twin view that had moved.
"""

import threading

from shared.adapters.state.memory import MemoryStateStore
from shared.wiring import embedded_twin_store
from tests.support import event_factory as factory
from tests.support.rig import CATALOG, rig


class Gate:
    """Delegates to ``inner``; the ``nth`` call of ``method`` signals ``arrived`` and waits for ``release``."""

    def __init__(self, inner, method, nth=1, before=None):
        self._inner, self._method, self._nth, self._calls = inner, method, nth, 0
        self._before = before
        self.arrived, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name):
        target = getattr(self._inner, name)
        if name != self._method:
            return target

        def gated(*args, **kwargs):
            self._calls += 1
            if self._calls == self._nth:
                self.arrived.set()
                assert self.release.wait(10), "gate never released"
            return target(*args, **kwargs)

        return gated


def instance(twins, state):
    r = rig(twins=twins)
    r.pipeline.applier.state = state
    return r.pipeline


def run_in_thread(pipeline, events):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("report", pipeline.process(events)))
    thread.start()
    return thread, out


def user(twin):
    return None if twin is None else {k: v for k, v in twin.items() if not k.startswith("$")}


def setup(connected_seq=1):
    twins, state = embedded_twin_store(CATALOG), MemoryStateStore()
    instance(twins, state).process([factory.lifecycle("dev1"), factory.connection("dev1", connected_seq, second=1)])
    return twins, state


def test_stale_patch_after_a_newer_writer_found_nothing_to_write():
    twins, state = setup()
    gate = Gate(twins, "patch_twin")
    stale, out = run_in_thread(instance(gate, state), [factory.connection("dev1", 2, connected=False, second=2)])
    assert gate.arrived.wait(5)  # stale writer: shadow committed (seq 2), PATCH Disconnected planned, in flight
    newer = instance(twins, state).process([factory.connection("dev1", 3, connected=True, second=3)])
    assert newer.twin_writes == 0  # the twin already shows Connected: nothing to write
    gate.release.set()
    stale.join()
    assert user(twins.get_twin("dev1")) == {"connectionState": "Connected"}  # step 3 re-showed the latest
    assert out["report"].twin_writes == 2


def test_stale_delete_after_a_newer_re_creation_found_nothing_to_write():
    twins, state = setup()
    gate = Gate(twins, "delete_twin")
    stale, _ = run_in_thread(instance(gate, state), [factory.lifecycle("dev1", created=False, second=5, version=2)])
    assert gate.arrived.wait(5)
    instance(twins, state).process([factory.lifecycle("dev1", created=True, second=9, version=3)])
    gate.release.set()
    stale.join()
    assert twins.get_twin("dev1") is not None  # the device was re-created after its deletion: it exists


def test_newer_writer_whose_twin_view_moved_before_it_decided():
    twins, state = setup()
    patch_gate = Gate(twins, "patch_twin")
    stale, _ = run_in_thread(instance(patch_gate, state), [factory.connection("dev1", 2, connected=False, second=2)])
    assert patch_gate.arrived.wait(5)  # stale writer committed seq 2 and holds its PATCH

    # The newer writer reads the twin (still Connected), then pauses before reading the shadow; meanwhile the stale
    # PATCH lands and the stale writer's check finds the shadow unchanged (the newer writer has not committed yet).
    load_gate = Gate(state, "load")
    newer_pipeline = instance(twins, load_gate)
    newer, out = run_in_thread(newer_pipeline, [factory.connection("dev1", 3, connected=True, second=3)])
    assert load_gate.arrived.wait(5)
    patch_gate.release.set()
    stale.join()
    assert user(twins.get_twin("dev1")) == {"connectionState": "Disconnected"}  # the stale value, for now
    load_gate.release.set()
    newer.join()
    assert user(twins.get_twin("dev1")) == {"connectionState": "Connected"}
    assert out["report"].counts()["applied"] == 1
