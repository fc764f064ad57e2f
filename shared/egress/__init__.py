"""Egress: Azure Digital Twins change notifications → routes → sinks (Event Hubs, Service Bus, Event Grid, …).

Pure core: notification parsing and validation (``notifications``), the routes/endpoints/propagation config
(``config``), transforms (``transforms``), the forwarding decisions (``router``) and propagation rules
(``propagation``). Sinks and the forwarding-record store are adapters behind the Protocols in ``ports``.
"""
