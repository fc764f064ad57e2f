"""Import every module of the deployed app (function_app, functions/, shared/) — run by the Makefile in the 3.13
venv right after it is built from requirements.txt ALONE (before any test tooling is added), so an import that only
worked because a dev tool pulled the package in fails here, naming the module and the missing package."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules() -> list[str]:
    names = ["function_app"]
    for package in ("functions", "shared"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def main() -> int:
    sys.path.insert(0, str(ROOT))
    failed = 0
    names = modules()
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            failed += 1
            print(f"cannot import {name}:\n{traceback.format_exc(limit=2)}", file=sys.stderr)
    print(f"imported {len(names) - failed}/{len(names)} modules with only requirements.txt installed "
          f"(Python {sys.version.split()[0]})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
