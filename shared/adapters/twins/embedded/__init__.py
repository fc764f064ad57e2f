"""The embedded Azure Digital Twins engine: DTDL models, twins, relationships, components, event routes and the
query language with ADT's semantics and error codes, in memory or persisted to SQLite. Pure Python; the emulator
(``python -m twinbridge adt serve``) serves it over HTTPS and in-process callers use ``TwinGraph`` directly."""

from shared.adapters.twins.embedded.errors import AdtError
from shared.adapters.twins.embedded.graph import EventRoute, Notification, TwinGraph
from shared.adapters.twins.embedded.paging import LIST_PAGE, QUERY_PAGE, Pages

__all__ = ["LIST_PAGE", "QUERY_PAGE", "AdtError", "EventRoute", "Notification", "Pages", "TwinGraph"]
