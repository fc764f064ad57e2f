"""``python -m twinbridge twins list|show ID|graph``: the embedded twin graph of a local run (its SQLite file)."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

DEFAULT_DB = ".run/demo/twins.db"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("twins", help="inspect the embedded twin graph of a local run (SQLite)",
                                   description="Reads the SQLite file the local host writes (TWINBRIDGE_TWIN_DB).")
    parser.add_argument("--db", default=None,
                        help=f"SQLite file (default: $TWINBRIDGE_TWIN_DB, else {DEFAULT_DB} from `make demo`)")
    sub = parser.add_subparsers(dest="twins_command", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser("list", help="one line per twin")
    listing.add_argument("--columns", help="comma-separated properties to show (default: the most common ones)")
    show = sub.add_parser("show", help="one twin as JSON, with its relationships")
    show.add_argument("twin_id")
    graph = sub.add_parser("graph", help="twins and relationships as text or Graphviz DOT")
    graph.add_argument("--format", choices=("text", "dot"), default="text")
    parser.set_defaults(handler=run)


def open_graph(db: str | None) -> Any:
    from shared.adapters.twins.embedded import TwinGraph
    from shared.adapters.twins.embedded.store import EmbeddedTwinStore

    path = db or os.environ.get("TWINBRIDGE_TWIN_DB") or DEFAULT_DB
    if not Path(path).is_file():
        raise SystemExit(f"no twin database at {path} (run `make demo`, or pass --db)")
    return EmbeddedTwinStore(TwinGraph(path))  # the engine's file holds its models too: nothing to upload


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 24 else text[:21] + "..."


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def list_twins(twins: list[dict[str, Any]], columns: list[str] | None) -> str:
    if not twins:
        return "no twins"
    if columns is None:
        counts = Counter(k for t in twins for k in t if not k.startswith("$") and k != "connectionState")
        columns = ["connectionState", *[k for k, _ in counts.most_common(6)]]
    rows = [["TWIN", "MODEL", *columns, "UPDATED"]]
    for twin in twins:
        meta = twin.get("$metadata", {})
        rows.append([twin["$dtId"], str(meta.get("$model", "")).removeprefix("dtmi:"),
                     *[_cell(twin.get(c)) for c in columns], str(meta.get("$lastUpdateTime", ""))[:19]])
    return table(rows) + f"\n{len(twins)} twin(s)"


def graph_text(graph: Any, twins: list[dict[str, Any]]) -> str:
    lines = []
    for twin in twins:
        lines.append(f"{twin['$dtId']} ({twin.get('$metadata', {}).get('$model', '?')})")
        for rel in sorted(graph.list_relationships(twin["$dtId"]), key=lambda r: str(r["$relationshipId"])):
            lines.append(f"  --{rel.get('$relationshipName', '?')}--> {rel['$targetId']}")
    return "\n".join(lines) if lines else "no twins"


def graph_dot(graph: Any, twins: list[dict[str, Any]]) -> str:
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph twins {", "  node [shape=box];"]
    for twin in twins:
        model = str(twin.get("$metadata", {}).get("$model", "")).removeprefix("dtmi:")
        label = quote(twin["$dtId"])[:-1] + "\\n" + quote(model)[1:]  # two lines: id, then model
        lines.append(f"  {quote(twin['$dtId'])} [label={label}];")
    for twin in twins:
        for rel in graph.list_relationships(twin["$dtId"]):
            lines.append(f"  {quote(twin['$dtId'])} -> {quote(rel['$targetId'])} "
                         f"[label={quote(str(rel.get('$relationshipName', '')))}];")
    lines.append("}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    graph = open_graph(args.db)
    try:
        twins = list(graph.list_twins())
        if args.twins_command == "list":
            columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
            print(list_twins(twins, columns))
        elif args.twins_command == "show":
            twin = graph.get_twin(args.twin_id)
            if twin is None:
                print(f"no twin {args.twin_id!r}", file=sys.stderr)
                return 1
            twin["$relationships"] = graph.list_relationships(args.twin_id)
            print(orjson.dumps(twin, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
        else:
            print(graph_dot(graph, twins) if args.format == "dot" else graph_text(graph, twins))
    finally:
        graph.close()
    return 0
