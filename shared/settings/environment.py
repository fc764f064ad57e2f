"""App settings, read once from the environment (Function App settings, or local.settings.json's Values).

Every setting is documented in local.settings.example.json. Nothing here is a secret: Azure access goes through
the managed identity (DefaultAzureCredential); storage uses the AzureWebJobsStorage connection the host needs anyway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings.doors import DoorSettings
from shared.settings.gc_tuning import DEFAULT_GEN0_THRESHOLD
from shared.settings.throughput import ThroughputSettings

APP_ROOT = Path(__file__).resolve().parents[2]  # shared/settings/environment.py → the app root


@dataclass(frozen=True, slots=True)
class Settings:
    config_path: str | None = None  # TWINBRIDGE_CONFIG: YAML/JSON app config; none → documented defaults
    allowed_topics: tuple[str, ...] = ()  # TWINBRIDGE_ALLOWED_TOPICS: comma-separated, added to config topics
    adt_url: str | None = None  # ADT_URL: https://<instance>.api.<region>.digitaltwins.azure.net; none → embedded
    adt_credential: str = "default"  # ADT_CREDENTIAL: default (DefaultAzureCredential) | emulator (loopback only)
    adt_ca: str | None = None  # ADT_CA_CERT: PEM bundle to trust for ADT_URL (the emulator's CA); none → system
    twin_db: str | None = None  # TWINBRIDGE_TWIN_DB: SQLite file for the embedded twin graph; none → memory
    models_dir: str = str(APP_ROOT / "models")  # TWINBRIDGE_MODELS_DIR: DTDL models (validation, embedded graph)
    quarantine_file: str | None = None  # TWINBRIDGE_QUARANTINE_FILE: JSONL quarantine for local runs
    state_store: str = "memory"  # TWINBRIDGE_STATE_STORE: memory | table (Table Storage on AzureWebJobsStorage)
    storage_connection: str | None = None  # AzureWebJobsStorage
    storage_account: str | None = None  # AzureWebJobsStorage__accountName: identity-based storage
    state_table: str = "twinbridgestate"  # TWINBRIDGE_STATE_TABLE: table for freshness shadows (state_store=table)
    quarantine_store: str | None = None  # TWINBRIDGE_QUARANTINE: blob | jsonl | memory; unset → jsonl if a file is set
    quarantine_container: str = "twinbridge-quarantine"  # TWINBRIDGE_QUARANTINE_CONTAINER (quarantine=blob)
    doors: DoorSettings = field(default_factory=DoorSettings)  # webhook, Event Hubs, reconcile (door_settings.py)
    throughput: ThroughputSettings = field(default_factory=ThroughputSettings)  # group commit, write pacer
    max_concurrency: int = 16  # TWINBRIDGE_MAX_CONCURRENCY: twins written at once per batch (1 = one at a time)
    forwarding_store: str = "memory"  # TWINBRIDGE_FORWARDING_STORE: memory | table (egress forwarding records)
    forwarding_table: str = "twinbridgeforwarding"  # TWINBRIDGE_FORWARDING_TABLE (forwarding_store=table)
    known_twins: int = 10_000  # TWINBRIDGE_KNOWN_TWINS: twins remembered (content, ETag) to skip the GET (0 = off)
    gc_gen0: int = DEFAULT_GEN0_THRESHOLD  # TWINBRIDGE_GC_GEN0: collector's first threshold (0 = Python's default)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        topics = tuple(t.strip() for t in (get("TWINBRIDGE_ALLOWED_TOPICS") or "").split(",") if t.strip())
        return cls(
            config_path=get("TWINBRIDGE_CONFIG"),
            allowed_topics=topics,
            adt_url=get("ADT_URL"),
            adt_credential=(get("ADT_CREDENTIAL") or "default").lower(),
            adt_ca=get("ADT_CA_CERT"),
            twin_db=get("TWINBRIDGE_TWIN_DB"),
            models_dir=get("TWINBRIDGE_MODELS_DIR") or str(APP_ROOT / "models"),
            quarantine_file=get("TWINBRIDGE_QUARANTINE_FILE"),
            state_store=(get("TWINBRIDGE_STATE_STORE") or "memory").lower(),
            storage_connection=get("AzureWebJobsStorage"),
            storage_account=get("AzureWebJobsStorage__accountName"),
            state_table=get("TWINBRIDGE_STATE_TABLE") or "twinbridgestate",
            quarantine_store=(get("TWINBRIDGE_QUARANTINE") or "").lower() or None,
            quarantine_container=get("TWINBRIDGE_QUARANTINE_CONTAINER") or "twinbridge-quarantine",
            doors=DoorSettings.from_env(env),
            throughput=ThroughputSettings.from_env(env),
            max_concurrency=max(1, int(get("TWINBRIDGE_MAX_CONCURRENCY") or 16)),
            forwarding_store=(get("TWINBRIDGE_FORWARDING_STORE") or "memory").lower(),
            forwarding_table=get("TWINBRIDGE_FORWARDING_TABLE") or "twinbridgeforwarding",
            known_twins=max(0, int(get("TWINBRIDGE_KNOWN_TWINS") or 10_000)),
            gc_gen0=int(get("TWINBRIDGE_GC_GEN0") or DEFAULT_GEN0_THRESHOLD),
        )
