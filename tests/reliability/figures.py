"""Measured figures: printed (visible with ``pytest -s``) and merged into ``.run/reliability-figures.json``.

The suite runs on several pytest-xdist workers at once: the merge holds an exclusive lock on a file beside the
figures, and the figures file is replaced whole (a reader never sees half of one)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import orjson

FIGURES = Path(__file__).resolve().parents[2] / ".run" / "reliability-figures.json"


# Appended to every figure's name while a test runs a variant (tests/reliability/conftest.py: the paced runs).
VARIANT = ""


def report(name: str, **values: Any) -> None:
    name += VARIANT
    print(f"\n[figure] {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with open(FIGURES.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = orjson.loads(FIGURES.read_bytes()) if FIGURES.exists() else {}
        except orjson.JSONDecodeError:
            data = {}
        data[name] = values
        partial = FIGURES.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        partial.replace(FIGURES)
