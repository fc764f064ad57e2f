"""When Digital Twins refuses a write, only the events whose values it refuses are quarantined
(shared/twins/isolation.py).

The app's local catalog does not know the model, so auto mode forwards every field; the twin service knows it and
refuses 'colour'. That is the realistic way a ValidationFailed happens.
"""

from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.errors import Code, TransientError
from shared.outcome import Outcome
from shared.wiring import embedded_twin_store
from tests.support import event_factory as factory
from tests.support.rig import rig

MODEL = "dtmi:test:Thing;1"


def service_graph():
    catalog = ModelCatalog()
    catalog.add({"@context": "dtmi:dtdl:context;3", "@id": MODEL, "@type": "Interface", "contents": [
        {"@type": "Property", "name": "temperature", "schema": "double"},
        {"@type": "Property", "name": "connectionState", "schema": "string"}]})
    return embedded_twin_store(catalog)


def thing_rig(twins):
    return rig({"twin": {"device_model": MODEL}}, twins=twins)


def test_only_the_event_with_the_refused_field_is_quarantined():
    r = thing_rig(service_graph())
    report = r.pipeline.process([
        factory.telemetry("d1", {"temperature": 20.0, "colour": "red"}, second=1, event_id="e1"),
        factory.telemetry("d1", {"temperature": 25.0}, second=2, event_id="e2"),
        factory.connection("d1", 1, second=3),
    ])
    assert [(res.event_id, res.outcome, res.code) for res in report.results] == [
        ("e1", Outcome.QUARANTINED, Code.TWIN_REJECTED), ("e2", Outcome.APPLIED, None),
        (report.results[2].event_id, Outcome.APPLIED, None)]
    assert report.results[0].path == "data.body.colour"
    assert r.user_twins()["d1"] == {"$model": MODEL, "temperature": 25.0, "connectionState": "Connected"}
    assert "colour" not in r.state.load("d1")[0].marks


def test_a_refused_value_from_an_interrupted_delivery_does_not_wedge_the_twin(monkeypatch):
    graph = service_graph()
    r = thing_rig(graph)
    batch = [factory.telemetry("d1", {"temperature": 20.0, "colour": "red"}, second=1, event_id="e1")]
    real_create = graph.create_twin

    def outage(twin_id, document):
        raise TransientError(Code.ADT_UNAVAILABLE, "503 past the retry budget")

    monkeypatch.setattr(graph, "create_twin", outage)
    first = r.pipeline.process(batch)  # the state is committed, the twin write fails
    assert first.results[0].outcome is Outcome.RETRY
    monkeypatch.setattr(graph, "create_twin", real_create)
    again = r.pipeline.process(batch)  # the redelivery: the event is a duplicate for the state...
    assert (again.results[0].outcome, again.results[0].code) == (Outcome.QUARANTINED, Code.TWIN_REJECTED)
    assert r.user_twins()["d1"] == {"$model": MODEL, "temperature": 20.0}  # ...its valid field still lands
    later = r.pipeline.process([factory.telemetry("d1", {"temperature": 30.0}, second=5, event_id="e3")])
    assert later.results[0].outcome is Outcome.APPLIED and r.user_twins()["d1"]["temperature"] == 30.0
    assert len(r.quarantine) == 1


def test_a_twin_the_service_refuses_outright_undoes_and_quarantines_the_batch():
    r = rig({"twin": {"device_model": "dtmi:test:NotUploaded;1"}}, twins=service_graph())
    report = r.pipeline.process([factory.telemetry("d1", {"temperature": 1.0}, event_id="e1")])
    assert (report.results[0].outcome, report.results[0].code) == (Outcome.QUARANTINED, Code.TWIN_REJECTED)
    assert r.state.load("d1")[0].device_fields() == {} and r.user_twins() == {}
