"""The invocation's time budget (shared/twins/deadline.py) reaches the retry policy and the applier's worker threads."""

from shared.adapters.twins.adt import retry_policy
from shared.errors import Code
from shared.outcome import Outcome
from shared.twins import deadline
from tests.support import event_factory as factory
from tests.support.rig import CATALOG, NetworkedGraph, rig


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_budget_nests_and_expires():
    clock = FakeClock()
    assert deadline.remaining() is None and not deadline.expired()
    with deadline.invocation_budget(20, clock):
        with deadline.invocation_budget(60, clock):  # a looser inner budget does not extend the outer one
            assert deadline.remaining() == 20
        clock.now += 25
        assert deadline.expired()
    assert deadline.remaining() is None


def test_retries_never_wait_past_the_invocations_budget():
    clock = FakeClock()
    policy = retry_policy(clock=clock)
    assert policy.configure_retries({})["deadline"] == clock.now + 8  # a call's own budget
    with deadline.invocation_budget(3, clock):
        assert policy.configure_retries({})["deadline"] == clock.now + 3  # what is left of the invocation's


def test_a_spent_budget_makes_no_twin_call_even_in_worker_threads():
    r = rig(twins=NetworkedGraph(CATALOG))
    assert r.pipeline._helpers > 0  # the twin groups run on helper threads too: the deadline must reach them
    r.pipeline.budget_seconds = 0
    report = r.pipeline.process([factory.telemetry(f"d{i}", {"temperature": 1.0}) for i in range(8)])
    assert {(res.outcome, res.code) for res in report.results} == {(Outcome.RETRY, Code.TIME_BUDGET_SPENT)}
    assert r.twins.calls == {"get": 0, "create": 0, "patch": 0, "delete": 0}
    r.pipeline.budget_seconds = 20
    assert r.pipeline.process([factory.telemetry("d1", {"temperature": 1.0})]).counts()["applied"] == 1
