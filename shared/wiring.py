"""The composition root: settings → config, adapters and the pipeline. The only module that picks adapters.

Everything the doors (functions/), the CLI (twinbridge/) and the tests run is assembled here: ``build_app`` for a
process, ``build_pipeline`` for one pipeline (the app's, the replay CLI's, the bench's, the tests' rigs), and the
``App``'s lazily built parts — the egress router, the forwarding store, the webhook's token keys, the registry and
the reconciler. A test (tests/test_layout.py) checks that no other module under shared/ or functions/ imports
``shared.adapters``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken

from shared.adapters.checkpoints.memory import MemoryCheckpoints
from shared.adapters.quarantine.local import JsonlQuarantine, MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.twins.embedded import AdtError, TwinGraph
from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.doors.dead_letters import DeadLetterSource, FolderDeadLetters
from shared.doors.webhook_auth import KeySource
from shared.errors import ConfigError, Problem
from shared.filters.config import build_event_filter
from shared.ingest.model_types import ModelTypes
from shared.ingest.timeparse import TICKS_PER_SECOND
from shared.ports import Checkpoints, Quarantine, StateStore, TwinStore
from shared.reconcile.decisions import ReconcileOptions, Registry
from shared.reconcile.run import Reconciler, utc_now_ticks
from shared.settings.app_config import AppConfig
from shared.settings.doors import DoorSettings
from shared.settings.environment import APP_ROOT, Settings
from shared.settings.gc_tuning import tune_gc
from shared.settings.throughput import ThroughputSettings
from shared.twins.group_commit import GroupCommit
from shared.twins.pipeline import DEFAULT_MAX_CONCURRENCY, BatchReport, Pipeline
from shared.twins.write_pacer import PacedTwinStore, PacerLimits

if TYPE_CHECKING:
    from shared.egress.ports import ForwardingStore
    from shared.egress.router import EgressRouter

log = logging.getLogger("twinbridge.wiring")
T = TypeVar("T")


@dataclass
class App:
    settings: Settings
    config: AppConfig
    catalog: ModelTypes
    twins: TwinStore
    state: StateStore
    quarantine: Quarantine
    pipeline: Pipeline
    checkpoints: Checkpoints = field(default_factory=MemoryCheckpoints)  # resume points (reconcile)

    @cached_property
    def egress(self) -> EgressRouter:
        """Built on first use (only the egress door needs it); tests may assign their own."""
        return build_egress(self)

    @cached_property
    def ingest_commit(self) -> GroupCommit:
        """The Event Grid trigger door's group commit (shared/twins/group_commit.py): one per process, as the app.
        Each flush is one batch for the observability contract, as a webhook delivery is."""
        from shared.observability import run_batch

        throughput = self.settings.throughput if self.settings is not None else ThroughputSettings()
        def flush(events: list[Any], sizes: list[int | None]) -> BatchReport:
            return run_batch("ingest_iothub_events", events, lambda batch: self.pipeline.process(batch, sizes))

        return GroupCommit(flush,
                           window=throughput.group_commit_window_ms / 1000,
                           max_wait=throughput.group_commit_max_wait_ms / 1000,
                           max_events=throughput.group_commit_max_events, name="ingest-group-commit")

    @cached_property
    def forwarding_store(self) -> ForwardingStore:
        """Egress forwarding records: one store per process, shared by the router and the timer's housekeeping."""
        return build_forwarding_store(self.settings)

    @cached_property
    def token_keys(self) -> KeySource | None:
        """The webhook's signing keys (WEBHOOK_AUTH_JWKS_URL), fetched and cached by the JWKS adapter; None unset."""
        url = self.settings.doors.webhook_auth_jwks_url
        if not url:
            return None
        from shared.adapters.token_keys.entra_jwks import JwksKeys

        return JwksKeys(url)

    @cached_property
    def registry(self) -> Registry:
        """The IoT Hub registry (reconcile), built on first use: only the timer and the CLI read it."""
        return build_registry(self.settings.doors)

    @cached_property
    def dead_letters(self) -> DeadLetterSource | None:
        """Where Event Grid's dead-letters are collected from (the collect_dead_letters timer and the CLI), built on
        first use; None when neither a folder nor storage is configured (nothing to collect)."""
        return build_dead_letter_source(self.settings)

    def reconciler(self, registry: Registry | None = None, clock: Callable[[], int] = utc_now_ticks) -> Reconciler:
        """A reconcile run's worker over this app's twins, state, applier and checkpoints (tests pass a registry)."""
        doors = self.settings.doors
        return Reconciler(registry if registry is not None else self.registry, self.twins, self.state,
                          self.pipeline.applier, self.pipeline.mapper, self.checkpoints, reconcile_options(self),
                          device_template=self.config.twin.device_id, device_model=self.config.twin.device_model,
                          hub_name=hub_name(doors), page_size=doors.reconcile_page_size, clock=clock)


def reconcile_options(app: App) -> ReconcileOptions:
    doors, conn = app.settings.doors, app.config.connection
    return ReconcileOptions(
        orphans=doors.reconcile_orphans, mark_property=doors.reconcile_mark_property,
        mark_value=doors.reconcile_mark_value, grace_ticks=doors.reconcile_grace_seconds * TICKS_PER_SECOND,
        connection_path=app.pipeline.mapper.connection_path,
        connection_values={True: conn.connected, False: conn.disconnected},
    )


def hub_name(doors: DoorSettings) -> str | None:
    """``myhub`` from ``myhub.azure-devices.net`` or from the connection string's HostName."""
    host = doors.iothub_host_name
    if doors.iothub_connection_string:
        parts = dict(p.split("=", 1) for p in doors.iothub_connection_string.split(";") if "=" in p)
        host = parts.get("HostName", host)
    return host.split(".", 1)[0] if host else None


def build_registry(doors: DoorSettings) -> Registry:
    from shared.adapters.registry.iothub import IotHubRegistry

    return IotHubRegistry.from_settings(doors.iothub_host_name, doors.iothub_connection_string)


def resolve_app_path(path: str) -> Path:
    """A relative path that does not exist from the working directory is taken from the app root (the worker's
    working directory is not guaranteed to be it on every hosting plan)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return APP_ROOT / candidate


def load_config(settings: Settings) -> AppConfig:
    config = AppConfig.load(resolve_app_path(settings.config_path), require_settings=True) \
        if settings.config_path else AppConfig.default()
    if settings.allowed_topics:
        config = config.model_copy(update={"topics": [*config.topics, *settings.allowed_topics]})
    # The Event Hubs door stamps IOTHUB_RESOURCE_ID on what the built-in endpoint delivers: that hub is trusted.
    hub = settings.doors.iothub_resource_id
    if hub and hub.lower() not in {t.lower() for t in config.topics}:
        config = config.model_copy(update={"topics": [*config.topics, hub]})
    return config


def load_catalog(settings: Settings, config: AppConfig) -> ModelCatalog:
    """The models directory parsed by the engine's DTDL registry, refused as ADT's model upload refuses it."""
    directory = config.models_dir or settings.models_dir
    if not Path(directory).is_dir():
        return ModelCatalog()
    try:
        return ModelCatalog.load_dir(directory)
    except AdtError as error:
        raise ConfigError("models", [Problem(str(directory), f"{error.code}: {error.message}")]) from None


class EmulatorToken:
    """A static bearer token for the local ADT emulator (``adt serve`` accepts any token and checks none)."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("adt-emulator-local-token", int(time.time()) + 3600)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def adt_instance(settings: Settings) -> str | None:
    """The instance's host name (``name.api.region.digitaltwins.azure.net``, or ``127.0.0.1:PORT`` for the
    emulator): the ``source`` ADT puts on its notifications, which the Event Grid schema does not carry."""
    return urlsplit(settings.adt_url).netloc or None if settings.adt_url else None


def adt_client_options(settings: Settings) -> dict[str, Any]:
    """The ADT client's credential and CA: ADT_CREDENTIAL (default | emulator) and ADT_CA_CERT."""
    assert settings.adt_url
    options: dict[str, Any] = {}
    if settings.adt_ca:
        options["connection_verify"] = settings.adt_ca  # trust the emulator's local CA for this client only
    if settings.adt_credential == "emulator":
        # a token that authenticates nobody must never leave this machine
        host = urlsplit(settings.adt_url).hostname or ""
        if host not in LOOPBACK_HOSTS:
            raise ConfigError("ADT_CREDENTIAL", [Problem("ADT_URL", f"ADT_CREDENTIAL=emulator is for a local "
                                                        f"emulator only; {host!r} is not a loopback address")])
        options["credential"] = EmulatorToken()
    elif settings.adt_credential != "default":
        raise ConfigError("ADT_CREDENTIAL", [Problem("", f"unknown credential {settings.adt_credential!r} "
                                                         "(default, emulator)")])
    return options


def build_twin_store(settings: Settings, catalog: ModelCatalog) -> TwinStore:
    """ADT (paced unless TWINBRIDGE_WRITE_PACER=off) or the embedded graph (paced only with =on)."""
    throughput = settings.throughput
    if settings.adt_url:
        from shared.adapters.twins.adt import AdtTwinStore, CountingPolicy, ThrottleListener

        options = adt_client_options(settings)
        if throughput.write_pacer == "off":
            return AdtTwinStore.from_url(settings.adt_url, **options)
        paced: list[PacedTwinStore] = []  # the pacer wraps the store the listener is built into
        listener = ThrottleListener(lambda seconds: paced[0].throttled(seconds) if paced else None)
        adt = AdtTwinStore.from_url(settings.adt_url, per_retry_policies=[CountingPolicy(), listener], **options)
        paced.append(pace(adt, throughput))
        return paced[0]
    graph = embedded_twin_store(catalog, settings.twin_db)
    return pace(graph, throughput) if throughput.write_pacer == "on" else graph


def pace(store: TwinStore, throughput: ThroughputSettings | None = None) -> PacedTwinStore:
    """``store`` behind the write pacer (shared/twins/write_pacer.py) with the configured limits."""
    throughput = throughput or ThroughputSettings()
    return PacedTwinStore(store, PacerLimits(
        twin_writes_per_second=throughput.twin_writes_per_second, patches_per_second=throughput.patches_per_second,
        reads_per_second=throughput.reads_per_second,
        creates_deletes_per_second=throughput.creates_deletes_per_second))


def embedded_twin_store(catalog: ModelCatalog, path: str | Path | None = None) -> EmbeddedTwinStore:
    """The embedded store: the ADT engine (shared/adapters/twins/embedded/) in process, in memory or over a SQLite
    file, holding the catalog's models (uploaded once: a file keeps them)."""
    graph = TwinGraph(path)
    try:
        catalog.upload_to(graph)
    except AdtError as error:
        graph.close()
        raise ConfigError("models", [Problem("", f"{error.code}: {error.message}")]) from None
    return EmbeddedTwinStore(graph)


def on_storage(settings: Settings, setting: str, what: str, by_connection: Callable[[str], T],
               by_account: Callable[[str], T]) -> T:
    """The storage account the Functions host uses: its connection string, else identity-based by account name."""
    if settings.storage_connection:
        return by_connection(settings.storage_connection)
    if settings.storage_account:
        return by_account(settings.storage_account)
    raise ConfigError(setting, [Problem("AzureWebJobsStorage", f"{what} needs AzureWebJobsStorage or "
                                                               "AzureWebJobsStorage__accountName")])


def build_state_store(settings: Settings) -> StateStore:
    if settings.state_store == "memory":
        return MemoryStateStore()
    if settings.state_store == "table":
        from shared.adapters.state.table import TableStateStore

        table = settings.state_table
        return on_storage(settings, "TWINBRIDGE_STATE_STORE", "state store 'table'",
                          lambda conn: TableStateStore.from_connection_string(conn, table),
                          lambda account: TableStateStore.from_account(account, table))
    raise ConfigError("TWINBRIDGE_STATE_STORE", [Problem("", f"unknown state store {settings.state_store!r}")])


def build_quarantine(settings: Settings) -> Quarantine:
    kind = settings.quarantine_store or ("jsonl" if settings.quarantine_file else "memory")
    if kind == "blob":
        from shared.adapters.quarantine.blob import BlobQuarantine

        container = settings.quarantine_container
        return on_storage(settings, "TWINBRIDGE_QUARANTINE", "quarantine 'blob'",
                          lambda conn: BlobQuarantine.from_connection_string(conn, container),
                          lambda account: BlobQuarantine.from_account(account, container))
    if kind == "jsonl":
        if not settings.quarantine_file:
            raise ConfigError("TWINBRIDGE_QUARANTINE", [Problem("TWINBRIDGE_QUARANTINE_FILE", "quarantine 'jsonl' "
                                                                "needs TWINBRIDGE_QUARANTINE_FILE")])
        return JsonlQuarantine(settings.quarantine_file)
    if kind == "memory":
        return MemoryQuarantine()
    raise ConfigError("TWINBRIDGE_QUARANTINE", [Problem("", f"unknown quarantine {kind!r} (blob, jsonl, memory)")])


def build_egress(app: App) -> EgressRouter:
    """Routes, sinks, forwarding records and propagation rules from the config's egress sections (issue #5)."""
    from shared.adapters.sinks import build_sink
    from shared.egress.config import load_egress
    from shared.egress.propagation import RulePropagator
    from shared.egress.router import EgressRouter

    egress = load_egress(app.config.sections, app.settings.config_path or "<config>")
    sinks = {name: build_sink(name, endpoint, os.environ) for name, endpoint in egress.endpoints.items()}
    store = app.forwarding_store
    propagator = RulePropagator(egress.rules, app.twins, app.state) if egress.rules else None
    return EgressRouter(egress, sinks, store, app.quarantine, propagator, instance=adt_instance(app.settings))


def build_dead_letter_source(settings: Settings, environ: Mapping[str, str] | None = None) -> DeadLetterSource | None:
    """TWINBRIDGE_DEADLETTER_DIR (a folder, as the local publisher writes), else the dead-letter container
    (TWINBRIDGE_DEADLETTER_CONTAINER, default eventgrid-deadletter) on the app's storage; None when neither."""
    env = os.environ if environ is None else environ
    folder = env.get("TWINBRIDGE_DEADLETTER_DIR")
    if folder:
        return FolderDeadLetters(folder)
    if not (settings.storage_connection or settings.storage_account):
        return None
    from shared.adapters.quarantine.blob import DEFAULT_DEADLETTER_CONTAINER, BlobDeadLetters

    container = env.get("TWINBRIDGE_DEADLETTER_CONTAINER") or DEFAULT_DEADLETTER_CONTAINER
    return on_storage(settings, "TWINBRIDGE_DEADLETTER_CONTAINER", "dead-letter collection",
                      lambda conn: BlobDeadLetters.from_connection_string(conn, container),
                      lambda account: BlobDeadLetters.from_account(account, container))


def build_forwarding_store(settings: Settings) -> ForwardingStore:
    """Egress forwarding records: per process (memory) or shared by every instance (Table Storage)."""
    from shared.adapters.forwarding.memory import MemoryForwardingStore

    if settings.forwarding_store == "memory":
        return MemoryForwardingStore()
    if settings.forwarding_store == "table":
        from shared.adapters.forwarding.table import TableForwardingStore

        table = settings.forwarding_table
        store: ForwardingStore = on_storage(
            settings, "TWINBRIDGE_FORWARDING_STORE", "forwarding store 'table'",
            lambda conn: TableForwardingStore.from_connection_string(conn, table),
            lambda account: TableForwardingStore.from_endpoint(f"https://{account}.table.core.windows.net", table))
        return store
    unknown = f"unknown forwarding store {settings.forwarding_store!r} (memory, table)"
    raise ConfigError("TWINBRIDGE_FORWARDING_STORE", [Problem("", unknown)])


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
    pipeline = build_pipeline(config, twins, catalog=catalog, state=state, quarantine=quarantine,
                              max_concurrency=settings.max_concurrency, known_twins=settings.known_twins)
    app = App(settings, config, catalog, twins, state, quarantine, pipeline, checkpoints=build_checkpoints(settings))
    # Once built: what exists now is frozen out of later collections (shared/settings/gc_tuning.py).
    tune_gc(settings.gc_gen0)
    return app


def build_pipeline(config: AppConfig, twins: TwinStore, *, catalog: ModelTypes | None = None,
                   state: StateStore | None = None, quarantine: Quarantine | None = None,
                   max_concurrency: int = DEFAULT_MAX_CONCURRENCY, known_twins: int = 0) -> Pipeline:
    """The one way a pipeline is assembled (the app, the replay CLI, the bench, the tests): the config's ``filters``
    section (the same one ``filters export`` deploys) applied; state and quarantine in memory unless given."""
    event_filter = build_event_filter(config.sections.get("filters"))
    return Pipeline(config, twins, state if state is not None else MemoryStateStore(),
                    quarantine if quarantine is not None else MemoryQuarantine(), catalog=catalog,
                    max_concurrency=max_concurrency, known_twins=known_twins,
                    event_filter=event_filter.check if event_filter else None)


def build_checkpoints(settings: Settings) -> Checkpoints:
    """Durable with the durable state store: a Function App's resume points must survive restarts."""
    if settings.state_store != "table":
        return MemoryCheckpoints()
    from shared.adapters.checkpoints.table import TableCheckpoints

    return on_storage(settings, "TWINBRIDGE_STATE_STORE", "checkpoints on table",
                      TableCheckpoints.from_connection_string, TableCheckpoints.from_account)
