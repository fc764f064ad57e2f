"""A pipeline over the embedded adapters, as the tests and the replay CLI build it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.twins.embedded_graph import EmbeddedTwinGraph
from shared.ingest.dtdl import ModelCatalog
from shared.settings.app_config import AppConfig
from shared.settings.environment import APP_ROOT
from shared.twins.pipeline import Pipeline
from tests.support import event_factory as factory
from tests.support.fixtures import SAMPLE_TOPIC

CATALOG = ModelCatalog.load_dir(APP_ROOT / "models")


class NetworkedGraph(EmbeddedTwinGraph):
    """The embedded graph declared remote, as ADT is: the pipeline then writes twins from helper threads too."""

    in_process = False


@dataclass
class Rig:
    pipeline: Pipeline
    twins: EmbeddedTwinGraph
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
    graph = twins if twins is not None else EmbeddedTwinGraph(CATALOG)
    state, quarantine = MemoryStateStore(), MemoryQuarantine()
    return Rig(Pipeline(app_config, graph, state, quarantine, catalog=CATALOG), graph, state, quarantine)
