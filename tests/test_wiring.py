"""shared/wiring.py builds the embedded twin store over the ADT engine and gives the mapper the same models."""

from __future__ import annotations

import shutil

import orjson
import pytest

from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.errors import ConfigError
from shared.settings.environment import APP_ROOT, Settings
from shared.wiring import build_app

MODULE = "dtmi:twinbridge:IoTModule;1"


def test_the_embedded_store_is_the_engine_and_a_file_keeps_its_models(tmp_path):
    db = tmp_path / "twins.db"
    first = build_app(Settings(twin_db=str(db)))
    assert isinstance(first.twins, EmbeddedTwinStore)
    # The mapper and the engine agree: IoTModule inherits temperature from IoTDevice (extends).
    declared = first.catalog.declared(MODULE)
    assert declared is not None and declared["temperature"].accepts(1.5) and not declared["temperature"].accepts("x")
    first.twins.create_twin("m1", {"$metadata": {"$model": MODULE}, "temperature": 1.5, "moduleStatus": "ok"})
    first.twins.close()
    again = build_app(Settings(twin_db=str(db)))  # the file holds the models already: no 409 ModelAlreadyExists
    assert again.twins.get_twin("m1")["temperature"] == 1.5


def test_a_model_without_context_refuses_to_start_as_adt_refuses_the_upload(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(APP_ROOT / "models", models)
    device = models / "IoTDevice.json"
    document = orjson.loads(device.read_bytes())
    del document["@context"]
    device.write_bytes(orjson.dumps(document))
    with pytest.raises(ConfigError) as caught:
        build_app(Settings(models_dir=str(models)))
    assert caught.value.source == "models" and "DTDLParserError" in str(caught.value.problems)
