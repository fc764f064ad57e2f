"""Config validation at start-up and the device → twin mapping."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import Code, ConfigError, PermanentError
from shared.ingest.mapping import Mapper
from shared.ingest.validation import read_envelope, validate_event
from shared.settings.app_config import AppConfig, MissingTwinPolicy
from tests.support import event_factory as factory
from tests.support.fixtures import load_event
from tests.support.rig import CATALOG


def event(name="device_telemetry", **data_updates):
    raw = load_event(name)
    raw["data"].update(data_updates)
    return validate_event(raw, read_envelope(raw))


def test_defaults_are_documented_values():
    config = AppConfig.default()
    assert config.twin.device_id == "{deviceId}" and config.missing_twin is MissingTwinPolicy.CREATE
    mapper = Mapper(config, CATALOG)
    target = mapper.target(event())
    assert (target.twin_id, target.model_id) == ("LogicAppTestDevice", "dtmi:twinbridge:IoTDevice;1")
    assert mapper.connection_path == ("connectionState",)


def test_auto_mode_keeps_declared_top_level_primitives_only():
    mapper = Mapper(AppConfig.default(), CATALOG)
    values = dict(mapper.telemetry_fields(mapper.target(event()), {
        "temperature": 21.5, "humidity": 43, "Weather": {"Temperature": 900}, "Location": "USA",
        "status": None, "co2": "high", "online": True, "bad-name": 1}))
    # Weather: object; Location: not in the model; status None; co2: wrong type; bad-name: not a DTDL name.
    assert values == {"temperature": 21.5, "humidity": 43, "online": True}


def test_auto_mode_without_a_known_model_keeps_every_primitive():
    mapper = Mapper(AppConfig.from_data({"twin": {"device_model": "dtmi:custom:Thing;1"}}), CATALOG)
    values = dict(mapper.telemetry_fields(mapper.target(event()), {"Location": "USA", "n": 1, "o": {}}))
    assert values == {"Location": "USA", "n": 1}


def test_templates_for_devices_and_modules():
    config = AppConfig.from_data({"twin": {"device_id": "{hubName}-{deviceId}", "module_id": "{deviceId}.{moduleId}"}})
    mapper = Mapper(config, CATALOG)
    assert mapper.target(event("device_connected")).twin_id == "egtesthub1-LogicAppTestDevice"
    module = mapper.target(event("module_connected"))
    assert (module.twin_id, module.model_id) == ("LogicAppTestDevice.tempSensor", "dtmi:twinbridge:IoTModule;1")


def test_mapped_mode_follows_paths_and_checks_types():
    config = AppConfig.from_data({"telemetry": {"mode": "mapped", "fields": [
        {"source": "Weather.Temperature", "property": "temperature"},
        {"source": "missing.path", "property": "humidity"}]}})
    mapper = Mapper(config, CATALOG)
    target = mapper.target(event())
    assert mapper.telemetry_fields(target, {"Weather": {"Temperature": 900}}) == {"temperature": 900}
    with pytest.raises(PermanentError) as caught:
        mapper.telemetry_fields(target, {"Weather": {"Temperature": "hot"}})
    assert (caught.value.code, caught.value.path) == (Code.MAPPING_FAILED, "data.body.Weather.Temperature")


def test_string_over_adt_limit_is_refused():
    mapper = Mapper(AppConfig.default(), CATALOG)
    with pytest.raises(PermanentError) as caught:
        mapper.telemetry_fields(mapper.target(event()), {"status": "é" * 2100})  # 4,200 bytes in UTF-8
    assert caught.value.code is Code.VALUE_TOO_LARGE and caught.value.path == "data.body.status"


def test_config_errors_list_every_problem_with_its_path():
    with pytest.raises(ConfigError) as caught:
        AppConfig.from_data({"twin": {"device_id": "{device}", "colour": "red"}, "missing_twin": "sometimes",
                             "event_types": ["Microsoft.Storage.BlobCreated"], "limits": {"max_event_bytes": 0}})
    paths = {p.path for p in caught.value.problems}
    assert paths == {"twin.device_id", "twin.colour", "missing_twin", "event_types", "limits.max_event_bytes"}
    assert "invalid configuration" in str(caught.value)


def test_mapping_targets_are_checked_against_the_model_at_start_up():
    config = AppConfig.from_data({"connection": {"property": "linkState"}, "telemetry": {
        "mode": "mapped", "fields": [{"source": "t", "property": "notDeclared"}]}})
    with pytest.raises(ConfigError) as caught:
        Mapper(config, CATALOG)
    assert {p.path for p in caught.value.problems} == {"connection.property", "telemetry.fields[0].property"}


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        AppConfig.load(bad)
    assert str(bad) in str(caught.value)
    good = tmp_path / "good.yaml"
    good.write_text("topics: ['/subscriptions/x/resourceGroups/r/providers/Microsoft.Devices/IotHubs/h']\n"
                    "missing_twin: quarantine\nfilters: {routing_query: 'true'}\n")
    loaded = AppConfig.load(good)
    assert loaded.missing_twin is MissingTwinPolicy.QUARANTINE
    assert loaded.sections == {"filters": {"routing_query": "true"}}


def test_app_setting_references_are_resolved_and_dollar_body_is_left_alone(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("topics: ['${HUB_ID}']\n"
                    "endpoints: {ts: {kind: eventhub, namespace: '${NS}.servicebus.windows.net'}}\n"
                    "routes: [{name: r, filter: \"$body.modelId = 'x'\", endpoint: ts}]\n")
    config = AppConfig.load(path, env={"HUB_ID": "/subscriptions/s/x", "NS": "contoso"})
    assert config.topics == ["/subscriptions/s/x"]
    assert config.sections["endpoints"]["ts"]["namespace"] == "contoso.servicebus.windows.net"
    assert config.sections["routes"][0]["filter"] == "$body.modelId = 'x'"
    offline = AppConfig.load(path, env={"HUB_ID": "h"})  # tooling: left as written
    assert offline.sections["endpoints"]["ts"]["namespace"] == "${NS}.servicebus.windows.net"
    with pytest.raises(ConfigError) as caught:
        AppConfig.load(path, env={"HUB_ID": "h"}, require_settings=True)
    assert [p.path for p in caught.value.problems] == ["endpoints.ts.namespace"]
    assert "NS" in str(caught.value)


def test_telemetry_cannot_set_the_connection_property():
    mapper = Mapper(AppConfig.default(), CATALOG)
    values = mapper.telemetry_fields(mapper.target(event()), {"connectionState": "Connected", "temperature": 1.0})
    assert values == {"temperature": 1.0}
    with pytest.raises(ConfigError) as caught:
        Mapper(AppConfig.from_data({"telemetry": {"mode": "mapped", "fields": [
            {"source": "state", "property": "connectionState"}]}}), CATALOG)
    assert [p.path for p in caught.value.problems] == ["telemetry.fields[0].property"]


def test_values_no_twin_can_hold_are_refused():
    mapper = Mapper(AppConfig.from_data({"twin": {"device_model": "dtmi:custom:Unknown;1"}}), CATALOG)
    target = mapper.target(event())
    assert mapper.telemetry_fields(target, {"c": 1.5, "d": 2**63 - 1}) == {"c": 1.5, "d": 2**63 - 1}
    # NaN is no JSON: the same code as on the doors whose parser refuses it (issue 15), not a silent drop
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(PermanentError) as caught:
            mapper.telemetry_fields(target, {"c": 1.5, "a": bad})
        assert (caught.value.code, caught.value.path) == (Code.UNSUPPORTED_VALUE, "data.body.a")
    from shared.adapters.twins.embedded.catalog import ModelCatalog

    ranges = ModelCatalog()
    ranges.add({"@context": "dtmi:dtdl:context;3", "@id": "dtmi:test:Ranges;1", "@type": "Interface", "contents": [
        {"@type": "Property", "name": n, "schema": s} for n, s in (("i", "integer"), ("l", "long"), ("d", "double"))]})
    declared = ranges.declared("dtmi:test:Ranges;1")
    assert declared is not None
    assert not declared["i"].accepts(2**31) and declared["l"].accepts(2**31)
    assert not declared["l"].accepts(2**63) and not declared["d"].accepts(float("nan"))


def test_module_twins_never_collide_with_devices_and_hub_names_are_consistent():

    config = AppConfig.from_data({"twin": {"device_id": "{hubName}.{deviceId}"}})
    mapper = Mapper(config, CATALOG)
    module = mapper.target(validate_event(raw := factory.connection("a", 1, module="b"), read_envelope(raw)))
    device = mapper.target(validate_event(raw := factory.connection("a-b", 1), read_envelope(raw)))
    assert module.twin_id != device.twin_id and module.twin_id == "a~b"
    telemetry = factory.telemetry("a-b", {"temperature": 1.0})
    assert mapper.target(validate_event(telemetry, read_envelope(telemetry))).twin_id == device.twin_id == \
        "factory-hub.a-b"
    with pytest.raises(ConfigError):
        AppConfig.from_data({"twin": {"module_id": "{deviceId}"}})


def test_module_ids_are_validated_like_device_ids():

    raw = factory.connection("a", 1, module="x/../y")
    with pytest.raises(PermanentError) as caught:
        validate_event(raw, read_envelope(raw))
    assert caught.value.problems[0].path.startswith("data.moduleId")


def test_two_sources_for_one_property_are_a_config_error():
    with pytest.raises(ConfigError) as caught:
        Mapper(AppConfig.from_data({"telemetry": {"mode": "mapped", "fields": [
            {"source": "a", "property": "temperature"}, {"source": "b", "property": "temperature"}]}}), CATALOG)
    assert [p.path for p in caught.value.problems] == ["telemetry.fields[1].property"]


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
                       st.text(max_size=5), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)))
def test_a_sure_type_is_only_ever_a_value_the_models_check_accepts(value):
    """The mapper takes a value of a property's ``sure_types`` without calling its check: for every schema that
    lists some, the check (and the engine's own validation of a twin) must accept each such value."""
    from shared.adapters.twins.embedded import dtdl
    from shared.adapters.twins.embedded.catalog import ModelCatalog
    from shared.adapters.twins.embedded.errors import AdtError

    catalog = ModelCatalog()
    from shared.adapters.twins.embedded.catalog import _FAST

    schemas = (*_FAST, "integer", "long", "date", "duration")  # every fast schema (those with sure types), others
    catalog.add({"@context": "dtmi:dtdl:context;3", "@id": "dtmi:test:Sure;1", "@type": "Interface", "contents": [
        {"@type": "Property", "name": f"p{i}", "schema": s} for i, s in enumerate(schemas)]})
    declared = catalog.declared("dtmi:test:Sure;1")
    resolved = catalog.registry.resolved("dtmi:test:Sure;1")
    assert declared is not None and resolved is not None
    assert any(p.sure_types for p in declared.values())
    for name, prop in declared.items():
        if type(value) not in prop.sure_types or (isinstance(value, float) and not math.isfinite(value)):
            continue
        assert prop.accepts(value), (prop.schema, value)
        try:
            dtdl.check_value(resolved.properties[name], value, f"/{name}")
        except AdtError as refused:
            raise AssertionError(f"{prop.schema} refuses {value!r}: {refused}") from None
