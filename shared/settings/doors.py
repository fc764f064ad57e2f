"""Settings of the webhook, Event Hubs and reconcile doors (docs/doors.md), read once from the environment.

Grouped here so that ``shared/settings/environment.py`` carries one field for all of them. Every name is documented in
``local.settings.example.json``. ``IOTHUB_CONNECTION_STRING`` is the only secret-bearing one and is meant for the
CLI on a workstation; in Azure use ``IOTHUB_HOST_NAME`` with the managed identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.settings.numbers import integer_setting

EVENT_GRID_MAX_BYTES = 1_048_576  # Event Grid: 1 MB per event and per delivered array (docs/azure-behaviour.md §6)
EVENT_GRID_ROLE = "AzureEventGridSecureWebhookSubscriber"  # app role Event Grid's token carries (Entra delivery)


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class DoorSettings:
    # --- eventgrid_webhook ---------------------------------------------------------------------------------------
    webhook_subscriptions: tuple[str, ...] = ()  # WEBHOOK_ALLOWED_SUBSCRIPTIONS: aeg-subscription-name; () = any
    webhook_max_body_bytes: int = EVENT_GRID_MAX_BYTES  # WEBHOOK_MAX_BODY_BYTES: larger bodies get 413
    webhook_retry_after: int = 30  # WEBHOOK_RETRY_AFTER_SECONDS: Retry-After on 503
    webhook_auth_audiences: tuple[str, ...] = ()  # WEBHOOK_AUTH_AUDIENCE: Entra bearer token required when set
    webhook_auth_issuers: tuple[str, ...] = ()  # WEBHOOK_AUTH_ISSUER: accepted 'iss' values
    webhook_auth_jwks_url: str | None = None  # WEBHOOK_AUTH_JWKS_URL: signing keys (https://login.../discovery/..)
    webhook_auth_role: str | None = EVENT_GRID_ROLE  # WEBHOOK_AUTH_ROLE: required app role; '-' = none
    # --- ingest_iothub_stream ------------------------------------------------------------------------------------
    iothub_resource_id: str | None = None  # IOTHUB_RESOURCE_ID: topic stamped on messages from the built-in endpoint
    stream_chunk_events: int = 128  # IOTHUB_STREAM_CHUNK: events per pipeline call; a transient failure stops there
    # --- reconcile_registry --------------------------------------------------------------------------------------
    iothub_host_name: str | None = None  # IOTHUB_HOST_NAME: <hub>.azure-devices.net (managed identity)
    iothub_connection_string: str | None = None  # IOTHUB_CONNECTION_STRING: workstation/CLI alternative (secret)
    reconcile_max_devices: int = 1000  # RECONCILE_MAX_DEVICES: registry devices (and twins) examined per run
    reconcile_page_size: int = 100  # RECONCILE_PAGE_SIZE: x-ms-max-item-count of each registry query
    reconcile_orphans: str = "mark"  # RECONCILE_ORPHANS: delete | mark | report (twins whose device is gone)
    reconcile_mark_property: str = "status"  # RECONCILE_MARK_PROPERTY: twin property 'mark' writes
    reconcile_mark_value: str = "NotInRegistry"  # RECONCILE_MARK_VALUE
    reconcile_grace_seconds: int = 300  # RECONCILE_GRACE_SECONDS: registry lag; newer event state is never touched

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DoorSettings:
        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        orphans = (get("RECONCILE_ORPHANS") or "mark").lower()
        if orphans not in ("delete", "mark", "report"):
            raise ValueError(f"RECONCILE_ORPHANS must be delete, mark or report, got {orphans!r}")
        role = get("WEBHOOK_AUTH_ROLE") or EVENT_GRID_ROLE
        return cls(
            webhook_subscriptions=tuple(s.lower() for s in _csv(get("WEBHOOK_ALLOWED_SUBSCRIPTIONS"))),
            webhook_max_body_bytes=integer_setting(env, "WEBHOOK_MAX_BODY_BYTES", EVENT_GRID_MAX_BYTES, 1),
            webhook_retry_after=integer_setting(env, "WEBHOOK_RETRY_AFTER_SECONDS", 30),
            webhook_auth_audiences=_csv(get("WEBHOOK_AUTH_AUDIENCE")),
            webhook_auth_issuers=_csv(get("WEBHOOK_AUTH_ISSUER")),
            webhook_auth_jwks_url=get("WEBHOOK_AUTH_JWKS_URL"),
            webhook_auth_role=None if role == "-" else role,
            iothub_resource_id=get("IOTHUB_RESOURCE_ID"),
            stream_chunk_events=integer_setting(env, "IOTHUB_STREAM_CHUNK", 128, 1),
            iothub_host_name=get("IOTHUB_HOST_NAME"),
            iothub_connection_string=get("IOTHUB_CONNECTION_STRING"),
            reconcile_max_devices=integer_setting(env, "RECONCILE_MAX_DEVICES", 1000, 1),
            reconcile_page_size=integer_setting(env, "RECONCILE_PAGE_SIZE", 100, 1),
            reconcile_orphans=orphans,
            reconcile_mark_property=get("RECONCILE_MARK_PROPERTY") or "status",
            reconcile_mark_value=get("RECONCILE_MARK_VALUE") or "NotInRegistry",
            reconcile_grace_seconds=integer_setting(env, "RECONCILE_GRACE_SECONDS", 300),
        )
