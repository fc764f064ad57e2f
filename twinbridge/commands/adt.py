"""``python -m twinbridge adt serve``: the Azure Digital Twins emulator (see docs/adt-emulator.md)."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    from twinbridge.adt.serve import WARNING, add_arguments, run

    parser = subparsers.add_parser(
        "adt", help="Azure Digital Twins emulator (HTTPS, ADT REST API 2023-10-31)",
        description="A local Azure Digital Twins data plane for the real SDK. " + WARNING)
    sub = parser.add_subparsers(dest="adt_command", metavar="ACTION")
    sub.required = True
    serve = sub.add_parser("serve", help="serve the emulator over HTTPS until Ctrl-C",
                           description="Serve ADT's data-plane REST API over HTTPS. " + WARNING)
    add_arguments(serve)
    serve.set_defaults(handler=run)
