"""The Azure Digital Twins emulator: ``python -m twinbridge adt serve`` serves the embedded engine
(shared.adapters.twins.embedded) over HTTPS with ADT's data-plane REST API (api-version 2023-10-31)."""
