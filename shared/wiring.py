"""Composition: settings → config, adapters and the pipeline. The only place that picks adapters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from shared.adapters.embedded_twins import EmbeddedTwinGraph
from shared.adapters.local_quarantine import JsonlQuarantine, MemoryQuarantine
from shared.adapters.memory_state import MemoryStateStore
from shared.config import AppConfig
from shared.dtdl import ModelCatalog
from shared.errors import ConfigError, Problem
from shared.filter_config import build_event_filter
from shared.pipeline import Pipeline
from shared.ports import Quarantine, StateStore, TwinStore
from shared.settings import Settings

log = logging.getLogger("twinbridge.wiring")


@dataclass
class App:
    settings: Settings
    config: AppConfig
    catalog: ModelCatalog
    twins: TwinStore
    state: StateStore
    quarantine: Quarantine
    pipeline: Pipeline


def load_config(settings: Settings) -> AppConfig:
    config = AppConfig.load(settings.config_path) if settings.config_path else AppConfig.default()
    if settings.allowed_topics:
        config = config.model_copy(update={"topics": [*config.topics, *settings.allowed_topics]})
    return config


def load_catalog(settings: Settings, config: AppConfig) -> ModelCatalog:
    directory = config.models_dir or settings.models_dir
    return ModelCatalog.load_dir(directory) if Path(directory).is_dir() else ModelCatalog()


def build_twin_store(settings: Settings, catalog: ModelCatalog) -> TwinStore:
    if settings.adt_url:
        from shared.adapters.adt_twins import AdtTwinStore

        return AdtTwinStore.from_url(settings.adt_url)
    return EmbeddedTwinGraph(catalog, settings.twin_db)


def build_state_store(settings: Settings) -> StateStore:
    if settings.state_store == "memory":
        return MemoryStateStore()
    raise ConfigError("TWINBRIDGE_STATE_STORE", [Problem("", f"unknown state store {settings.state_store!r}")])


def build_quarantine(settings: Settings) -> Quarantine:
    return JsonlQuarantine(settings.quarantine_file) if settings.quarantine_file else MemoryQuarantine()


def build_app(settings: Settings | None = None) -> App:
    settings = settings or Settings.from_env()
    config = load_config(settings)
    if not config.topics:
        log.warning("no allowed topics configured (config 'topics' or TWINBRIDGE_ALLOWED_TOPICS): "
                    "every IoT Hub event will be quarantined as TOPIC_NOT_ALLOWED")
    catalog = load_catalog(settings, config)
    twins = build_twin_store(settings, catalog)
    state = build_state_store(settings)
    quarantine = build_quarantine(settings)
    event_filter = build_event_filter(config.sections.get("filters"))  # same section `filters export` deploys
    pipeline = Pipeline(config, twins, state, quarantine, catalog=catalog, max_concurrency=settings.max_concurrency,
                        event_filter=event_filter.check if event_filter else None)
    return App(settings, config, catalog, twins, state, quarantine, pipeline)
