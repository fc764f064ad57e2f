"""The layout docs/architecture.md draws: which folder may import which, and wiring.py as the only adapter picker.

Read from the sources' import statements (ast), so a new module is checked without being listed anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# shared/<part> → the other parts of shared/ it may import, besides errors and outcome (every part may). Stages
# only look back along the event's path: settings → ingest → twins, with ingest knowing twins only through
# twins.freshness (the Intent it hands over).
EVERYWHERE = {"errors", "outcome"}
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "outcome": set(),
    "ports": {"twins"},  # the Shadow the state store keeps
    "settings": {"errors", "ingest"},
    "ingest": {"errors", "settings", "twins"},
    "twins": {"errors", "ports", "settings", "ingest", "quarantine_record"},
    "quarantine_record": {"errors", "ports"},
    "filters": {"errors"},
    "doors": {"errors", "ports", "ingest", "twins", "quarantine_record"},  # dead_letters writes quarantine records
    "reconcile": {"errors", "ports", "ingest", "twins"},
    "egress": {"errors", "ports", "ingest", "twins", "filters", "quarantine_record", "observability"},
    "observability": {"errors"},
    "adapters": {"errors", "ports", "ingest", "twins", "egress", "reconcile", "observability",
                 "filters"},  # the embedded ADT engine evaluates event route filters (filters.adt_route)
}


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def test_only_wiring_imports_adapters() -> None:
    """Doors and core modules get adapters from the App that shared/wiring.py builds, never by importing them."""
    offenders = []
    for path in sources("shared", "functions"):
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("shared", "adapters") or relative == Path("shared/wiring.py"):
            continue
        offenders += [f"{relative}: {m}" for m in imports(path) if m.startswith("shared.adapters")]
    assert offenders == []


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_each_part_of_shared_imports_only_what_the_map_allows(part: str) -> None:
    target = ROOT / "shared" / part
    files = sources(f"shared/{part}") if target.is_dir() else [target.with_suffix(".py")]
    assert files, f"shared/{part} is gone: update MAY_IMPORT and docs/architecture.md"
    wrong = set()
    for path in files:
        for module in imports(path):
            parts = module.split(".")
            if parts[0] == "shared" and len(parts) > 1 and parts[1] != part \
                    and parts[1] not in MAY_IMPORT[part] | EVERYWHERE:
                wrong.add(f"{path.relative_to(ROOT)}: {module}")
    assert wrong == set()


def test_ingest_knows_the_twins_stage_only_by_the_intent_it_hands_over() -> None:
    uses = {m for path in sources("shared/ingest") for m in imports(path) if m.startswith("shared.twins")}
    assert {m.rsplit(".", 1)[0] if m.count(".") > 2 else m for m in uses} <= {"shared.twins.freshness"}


def test_the_checks_see_a_forbidden_import(tmp_path: Path) -> None:
    """The ast reading above does find imports in every form a module may use (else the tests could not fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text("import shared.adapters.state.memory\nfrom shared.adapters import sinks\n"
                     "def f():\n    from shared.adapters.twins.adt import AdtTwinStore\n", encoding="utf-8")
    assert [m for m in imports(probe) if m.startswith("shared.adapters")] == [
        "shared.adapters.state.memory", "shared.adapters", "shared.adapters.sinks",
        "shared.adapters.twins.adt", "shared.adapters.twins.adt.AdtTwinStore"]
