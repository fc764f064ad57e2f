"""Measured figures: printed (visible with ``pytest -s``) and merged into ``.run/reliability-figures.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FIGURES = Path(__file__).resolve().parents[2] / ".run" / "reliability-figures.json"


def report(name: str, **values: Any) -> None:
    print(f"\n[figure] {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = orjson.loads(FIGURES.read_bytes()) if FIGURES.exists() else {}
    except orjson.JSONDecodeError:
        data = {}
    data[name] = values
    FIGURES.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
