"""Twin-store adapters grouped by port: ``embedded`` is the spec-faithful Azure Digital Twins engine."""
