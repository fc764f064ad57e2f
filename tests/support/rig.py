"""The tests' one rig builder: a pipeline (``rig``) or a whole app (``make_app``) over the embedded adapters,
assembled by shared.wiring.build_pipeline exactly as the app, the replay CLI and the bench assemble theirs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.adapters.checkpoints.memory import MemoryCheckpoints
from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.ports import Quarantine, StateStore, TwinStore
from shared.settings.app_config import AppConfig
from shared.settings.doors import DoorSettings
from shared.settings.environment import APP_ROOT, Settings
from shared.twins.pipeline import Pipeline
from shared.wiring import App, build_pipeline, embedded_twin_store
from tests.support import event_factory as factory
from tests.support.fixtures import SAMPLE_TOPIC

CATALOG = ModelCatalog.load_dir(APP_ROOT / "models")


class NetworkedGraph(EmbeddedTwinStore):
    """The embedded store declared remote, as ADT is: the pipeline then writes twins from helper threads too."""

    in_process = False

    def __init__(self, catalog: ModelCatalog = CATALOG) -> None:
        super().__init__(embedded_twin_store(catalog).graph)


@dataclass
class Rig:
    pipeline: Pipeline
    twins: EmbeddedTwinStore
    state: MemoryStateStore
    quarantine: MemoryQuarantine

    def user_twins(self) -> dict[str, dict[str, Any]]:
        """Twins without etags and time metadata: what must be equal between two runs."""
        return {t["$dtId"]: {"$model": t["$metadata"]["$model"],
                             **{k: v for k, v in t.items() if not k.startswith("$")}}
                for t in self.twins.list_twins()}


def rig(config: dict[str, Any] | None = None, twins: Any = None) -> Rig:
    data = {"topics": [factory.TOPIC, SAMPLE_TOPIC], **(config or {})}
    app_config = AppConfig.from_data(data)
    graph = twins if twins is not None else embedded_twin_store(CATALOG)
    state, quarantine = MemoryStateStore(), MemoryQuarantine()
    pipeline = build_pipeline(app_config, graph, catalog=CATALOG, state=state, quarantine=quarantine)
    return Rig(pipeline, graph, state, quarantine)


def make_app(twins: TwinStore | None = None, config: dict[str, Any] | None = None,
             doors: DoorSettings | None = None, settings: Settings | None = None, *,
             state: StateStore | None = None, quarantine: Quarantine | None = None, max_concurrency: int = 1) -> App:
    """An app as the doors see it (functions.runtime.use_app installs it); state and quarantine in memory unless
    given. ``max_concurrency`` 1 by default: one twin at a time, for deterministic write counts and fault order."""
    settings = settings or Settings(doors=doors or DoorSettings())
    app_config = AppConfig.from_data({"topics": [factory.TOPIC], **(config or {})})
    graph = twins if twins is not None else embedded_twin_store(CATALOG)
    state = state if state is not None else MemoryStateStore()
    quarantine = quarantine if quarantine is not None else MemoryQuarantine()
    pipeline = build_pipeline(app_config, graph, catalog=CATALOG, state=state, quarantine=quarantine,
                              max_concurrency=max_concurrency)
    return App(settings, app_config, CATALOG, graph, state, quarantine, pipeline, MemoryCheckpoints())
