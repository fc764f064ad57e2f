"""Command dispatcher: every module in ``twinbridge.commands`` contributes one sub-command.

A command module defines ``register(subparsers)`` which adds its parser and sets ``handler`` as a default:
``handler(args) -> int`` returns the process exit code. Discovery keeps this file free of per-command edits.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import twinbridge.commands as commands_pkg
from shared.adapters.twins.embedded.persistence import TwinGraphFileError

# Tools that live in their own package (with static files, tests of their own) register here.
PACKAGE_COMMANDS = ("twinbridge.explorer.command",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twinbridge",
        description="twinbridge: IoT Hub → Azure Digital Twins tooling (replay, filters, host, simulate, bench).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        module.register(sub)
    for name in PACKAGE_COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except TwinGraphFileError as exc:  # a corrupt or locked twin graph file: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
