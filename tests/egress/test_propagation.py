"""Propagation rules through the embedded twin graph: parent updates, freshness, conflicts and the loop guard."""

from __future__ import annotations

from typing import Any

from shared.adapters.forwarding.memory import MemoryForwardingStore
from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.twins.embedded import TwinGraph
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.egress.config import load_egress
from shared.egress.notifications import read_notification
from shared.egress.propagation import RulePropagator
from shared.egress.router import EgressRouter
from shared.outcome import Outcome
from tests.egress import adt

UPDATE = "type = 'Microsoft.DigitalTwins.Twin.Update'"
ROOMS = f"{UPDATE} AND $body.modelId = '{adt.ROOM}'"


# The tutorial's shapes (floor --contains--> room), one base declaring every property the rules below read or write:
# the engine, like ADT, refuses a property or relationship the twin's model does not declare.
_PLACE = "dtmi:contoso:Place;1"
_NUMBERS = ("Temperature", "AverageTemperature", "Humidity", "LastTemperature", "MaxTemperature", "Min", "Other",
            "Rooms", "T", "Total")
MODELS = [
    {"@context": "dtmi:dtdl:context;3", "@id": _PLACE, "@type": "Interface",
     "contents": [*({"@type": "Property", "name": name, "schema": "double"} for name in _NUMBERS),
                  {"@type": "Relationship", "name": "contains"}]},
    *({"@context": "dtmi:dtdl:context;3", "@id": model, "@type": "Interface", "extends": _PLACE}
      for model in (adt.ROOM, adt.FLOOR)),
]


class NotifyingGraph(EmbeddedTwinStore):
    """The embedded store, plus the Twin.Update notification ADT would emit for every successful patch."""

    def __init__(self) -> None:
        graph = TwinGraph()
        graph.add_models(MODELS)
        super().__init__(graph)
        self.emitted: list[dict[str, Any]] = []
        self.conflicts_to_inject = 0

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        if self.conflicts_to_inject:
            self.conflicts_to_inject -= 1
            super().patch_twin(twin_id, [{"op": "add", "path": "/Other", "value": 1}], "*")  # someone else wrote
        new_etag = super().patch_twin(twin_id, patch, etag)
        twin = self.get_twin(twin_id)
        assert twin is not None
        self.emitted.append(adt.twin_update(twin_id, patch, model=twin["$metadata"]["$model"],
                                            nid=f"adt-{len(self.emitted)}", second=30 + len(self.emitted)))
        return new_etag


def _graph(rooms: dict[str, float]) -> NotifyingGraph:
    graph = NotifyingGraph()
    graph.create_twin("floor-1", {"$metadata": {"$model": adt.FLOOR}})
    for room, temperature in rooms.items():
        graph.create_twin(room, {"$metadata": {"$model": adt.ROOM}, "Temperature": temperature})
        graph.upsert_relationship("floor-1", f"floor-1-{room}", {"$targetId": room, "$relationshipName": "contains"})
    return graph


def _rules(*rules: dict[str, Any]) -> Any:
    return load_egress({"propagation": list(rules)}).rules


def _rule(name: str, mode: str, target: str, flt: str = ROOMS, source: str = "/Temperature", **extra: Any
          ) -> dict[str, Any]:
    return {"name": name, "filter": flt, "relationship": "contains", "source": source, "target": target,
            "mode": mode, **extra}


def _room_update(graph: NotifyingGraph, room: str, value: float, *, nid: str, second: float,
                 source_time: str | None = None) -> dict[str, Any]:
    """The child changes in the graph (as the ingest path would do) and ADT notifies it."""
    twin = graph.get_twin(room)
    assert twin is not None
    graph.patch_twin(room, [adt.replace("/Temperature", value)], twin["$etag"])
    graph.emitted.pop()  # replaced by the notification built here, with a chosen id and time
    patch = [adt.replace("/Temperature", value)]
    if source_time:
        patch.append({"op": "add", "path": "/$metadata/Temperature/sourceTime", "value": source_time})
    return adt.twin_update(room, patch, nid=nid, second=second)


def test_aggregate_rules_update_the_parent_through_the_router() -> None:
    graph = _graph({"room-1": 20.0, "room-2": 24.0, "room-3": 19.0})
    rules = _rules(_rule("avg", "avg", "/AverageTemperature"), _rule("max", "max", "/MaxTemperature"),
                   _rule("n", "count", "/Rooms"), _rule("sum", "sum", "/Total"), _rule("min", "min", "/Min"))
    router = EgressRouter(load_egress({}), {}, MemoryForwardingStore(), MemoryQuarantine(),
                          RulePropagator(rules, graph, MemoryStateStore()))
    report = router.process([_room_update(graph, "room-1", 22.0, nid="n1", second=1)])
    assert report.results[0].outcome is Outcome.APPLIED and report.results[0].parents_written == 5
    floor = graph.get_twin("floor-1")
    assert floor is not None
    assert (floor["AverageTemperature"], floor["MaxTemperature"], floor["Rooms"], floor["Total"], floor["Min"]) == (
        65.0 / 3, 24.0, 3, 65.0, 19.0)


def test_copy_keeps_the_newest_source_time_whatever_the_arrival_order() -> None:
    graph = _graph({"room-1": 20.0, "room-2": 24.0})
    propagator = RulePropagator(_rules(_rule("last", "copy", "/LastTemperature")), graph, MemoryStateStore())
    newer = _room_update(graph, "room-2", 25.0, nid="n-new", second=5)
    older = _room_update(graph, "room-1", 19.0, nid="n-old", second=1)  # delivered late
    assert propagator.apply(read_notification(newer)) == 1
    assert propagator.apply(read_notification(older)) == 0
    floor = graph.get_twin("floor-1")
    assert floor is not None and floor["LastTemperature"] == 25.0
    patches = graph.calls["patch"]
    assert propagator.apply(read_notification(newer)) == 0  # redelivery: duplicate, nothing written
    assert graph.calls["patch"] == patches
    # the device's own clock ($metadata sourceTime in the patch) outranks the notification time
    measured_later = _room_update(graph, "room-1", 18.0, nid="n-src", second=2, source_time="2026-11-23T10:00:09Z")
    assert propagator.apply(read_notification(measured_later)) == 1
    floor = graph.get_twin("floor-1")
    assert floor is not None and floor["LastTemperature"] == 18.0


def test_a_conflicting_parent_write_is_re_read_and_retried() -> None:
    graph = _graph({"room-1": 20.0, "room-2": 24.0})
    propagator = RulePropagator(_rules(_rule("avg", "avg", "/AverageTemperature")), graph, MemoryStateStore())
    notification = read_notification(_room_update(graph, "room-1", 30.0, nid="n1", second=1))
    graph.conflicts_to_inject = 1
    assert propagator.apply(notification) == 1
    floor = graph.get_twin("floor-1")
    assert floor is not None and floor["AverageTemperature"] == 27.0 and floor["Other"] == 1


def test_rules_ignore_patches_that_do_not_touch_their_source_and_unmatched_filters() -> None:
    graph = _graph({"room-1": 20.0})
    propagator = RulePropagator(_rules(_rule("avg", "avg", "/AverageTemperature")), graph, MemoryStateStore())
    assert propagator.apply(read_notification(adt.twin_update("room-1", [adt.replace("/Humidity", 40)]))) == 0
    other_model = adt.twin_update("room-1", [adt.replace("/Temperature", 1)], model="dtmi:other;1")
    assert propagator.apply(read_notification(other_model)) == 0
    assert graph.calls["patch"] == 0


def test_the_parents_own_update_does_not_feed_back_and_cycles_stop_at_max_hops() -> None:
    # A rule whose target is its own source, matching every model: the written parent's notification matches it.
    graph = NotifyingGraph()
    for twin in ("a", "b", "c"):
        graph.create_twin(twin, {"$metadata": {"$model": adt.ROOM}, "T": 1})
    graph.upsert_relationship("a", "a-b", {"$targetId": "b", "$relationshipName": "contains"})
    graph.upsert_relationship("a", "a-c", {"$targetId": "c", "$relationshipName": "contains"})
    graph.upsert_relationship("b", "b-a", {"$targetId": "a", "$relationshipName": "contains"})  # a cycle
    rules = _rules(_rule("sum", "sum", "/T", flt=UPDATE, source="/T", max_hops=3))
    router = EgressRouter(load_egress({}), {}, MemoryForwardingStore(), MemoryQuarantine(),
                          RulePropagator(rules, graph, MemoryStateStore()))
    queue = [adt.twin_update("c", [adt.replace("/T", 1)], nid="start")]
    deliveries = 0
    while queue and deliveries < 50:  # ADT routing every emitted notification back to the egress door
        router.process([queue.pop(0)]).raise_if_transient()
        deliveries += 1
        queue.extend(graph.emitted)
        graph.emitted.clear()
    assert not queue, "the loop guard must stop the ping-pong"
    # start → a (hop 1) → b (hop 2) → a (hop 3) → b (hop 4, its echo is not propagated further)
    assert deliveries == 5 and graph.calls["patch"] == 4


def test_a_chain_within_max_hops_climbs_every_level() -> None:
    graph = NotifyingGraph()
    for level in range(4):
        graph.create_twin(f"l{level}", {"$metadata": {"$model": adt.ROOM}})
    for level in range(3):
        graph.upsert_relationship(f"l{level}", f"r{level}", {"$targetId": f"l{level + 1}",
                                                              "$relationshipName": "contains"})
    router = EgressRouter(load_egress({}), {}, MemoryForwardingStore(), MemoryQuarantine(),
                          RulePropagator(_rules(_rule("up", "copy", "/T", flt=UPDATE, source="/T")), graph,
                                         MemoryStateStore()))
    queue = [adt.twin_update("l3", [adt.replace("/T", 7)], nid="start")]
    while queue:
        router.process([queue.pop(0)]).raise_if_transient()
        queue.extend(graph.emitted)
        graph.emitted.clear()
    assert [(graph.get_twin(f"l{level}") or {}).get("T") for level in range(3)] == [7, 7, 7]


def test_conflicts_never_end_is_transient() -> None:
    graph = _graph({"room-1": 20.0})
    propagator = RulePropagator(_rules(_rule("avg", "avg", "/AverageTemperature")), graph, MemoryStateStore())
    router = EgressRouter(load_egress({}), {}, MemoryForwardingStore(), MemoryQuarantine(), propagator)
    notification = _room_update(graph, "room-1", 21.0, nid="n1", second=1)
    graph.conflicts_to_inject = 99
    report = router.process([notification])
    assert report.results[0].outcome is Outcome.RETRY and report.results[0].code == "CONFLICT_RETRIES_EXHAUSTED"



def test_a_child_joining_or_leaving_recomputes_the_aggregate() -> None:
    """Relationship.Create/Delete of the rule's relationship: the parent's average follows its set of children
    (no child changed, so no Twin.Update would ever correct it)."""
    graph = _graph({"room-1": 20.0, "room-2": 24.0})
    graph.create_twin("room-3", {"$metadata": {"$model": adt.ROOM}, "Temperature": 30.0})
    propagator = RulePropagator(_rules(_rule("avg", "avg", "/AverageTemperature"),
                                       _rule("last", "copy", "/LastTemperature")), graph, MemoryStateStore())
    graph.upsert_relationship("floor-1", "floor-1-room-3", {"$targetId": "room-3", "$relationshipName": "contains"})
    joined = read_notification(adt.relationship("floor-1", "floor-1-room-3", "room-3"))
    assert propagator.apply(joined) == 1
    floor = graph.get_twin("floor-1")
    assert floor is not None and floor["AverageTemperature"] == 74.0 / 3 and "LastTemperature" not in floor
    graph.delete_relationship("floor-1", "floor-1-room-1")
    left = read_notification(adt.relationship("floor-1", "floor-1-room-1", "room-1", created=False))
    assert propagator.apply(left) == 1
    floor = graph.get_twin("floor-1")
    assert floor is not None and floor["AverageTemperature"] == 27.0
    other = read_notification(adt.relationship("floor-1", "floor-1-x", "room-2", name="feeds"))
    assert propagator.apply(other) == 0


def test_the_last_child_leaving_removes_the_aggregate_instead_of_keeping_a_stale_one() -> None:
    """An average over no children is undefined: the parent's value goes (found by the demo: a site whose only
    device was deleted kept that device's temperature as its average)."""
    graph = _graph({"room-1": 20.0, "room-2": 24.0})
    propagator = RulePropagator(_rules(_rule("avg", "avg", "/AverageTemperature")), graph, MemoryStateStore())
    for room in ("room-1", "room-2"):
        assert propagator.apply(read_notification(adt.relationship("floor-1", f"floor-1-{room}", room))) in (0, 1)
    floor = graph.get_twin("floor-1")
    assert floor is not None and floor["AverageTemperature"] == 22.0
    for room in ("room-1", "room-2"):
        graph.delete_relationship("floor-1", f"floor-1-{room}")
        propagator.apply(read_notification(adt.relationship("floor-1", f"floor-1-{room}", room, created=False)))
    floor = graph.get_twin("floor-1")
    assert floor is not None and "AverageTemperature" not in floor
    again = read_notification(adt.relationship("floor-1", "floor-1-room-2", "room-2", created=False))
    assert propagator.apply(again) == 0  # nothing left to remove: no write


def test_an_update_of_a_child_deleted_since_propagates_nothing_and_does_not_fail() -> None:
    """Found by the demo's loop: a Twin.Update delivered after its twin was deleted made listing the child's
    incoming relationships raise TwinMissing (ADT: 404 DigitalTwinNotFound), so it was redelivered forever."""
    graph = _graph({"room-1": 20.0})
    propagator = RulePropagator(_rules(_rule("avg", "avg", "/AverageTemperature")), graph, MemoryStateStore())
    update = _room_update(graph, "room-1", 25.0, nid="late", second=5)
    graph.delete_relationship("floor-1", "floor-1-room-1")
    graph.delete_twin("room-1")
    assert propagator.apply(read_notification(update)) == 0
