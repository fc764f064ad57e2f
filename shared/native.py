"""The optional compiled build of the pure core: the same sources, compiled to C extension modules by mypyc.

Why: per event, CPython spends most of the core's time interpreting (docs/performance.md, "Third pass"). These
modules are already mypy-strict, so mypyc compiles them unchanged. The benchmark's core runs ~1.45× faster compiled.

How: ``python -m twinbridge native build`` writes an extension module for each of ``COMPILED_MODULES`` into
``.build/native/``, with a manifest holding the SHA-256 of every source it compiled. When ``shared`` is first imported,
``activate`` puts the compiled modules ahead of the sources, but only when the manifest matches this interpreter and
every source byte. Otherwise the sources run, and ``status()`` says why. So:
- an edited source never runs stale compiled code;
- a deployment without the build (remote build) runs exactly as before.
``TWINBRIDGE_PURE_PYTHON=1`` forces the sources; the test suite runs the pure core that way as well.

Never compiled itself, and imports nothing of the app: it must run before anything it could replace.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the app's root: shared/ lives here
NATIVE_DIR = SOURCE_ROOT / ".build" / "native"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
# mypyc puts the runtime shared by the compiled modules in one top-level library beside the package, named after
# the build's group (python -m twinbridge native build passes RUNTIME_GROUP).
RUNTIME_GROUP = "shared_native"
RUNTIME_MODULE = f"{RUNTIME_GROUP}__mypyc"
PURE_PYTHON_ENV = "TWINBRIDGE_PURE_PYTHON"

# The per-event path. Not compiled: adapters (tests wrap and subclass them, which compiled classes refuse), modules
# pydantic must read as Python classes (shared.ingest.schemas), and what runs once per process (config, wiring).
COMPILED_MODULES: tuple[str, ...] = (
    "shared.errors",
    "shared.ingest.events",
    "shared.ingest.timeparse",
    "shared.ingest.guard",
    "shared.ingest.validation",
    "shared.ingest.decode",
    "shared.ingest.dtdl",
    "shared.ingest.mapping",
    "shared.twins.freshness",
    "shared.twins.patch_plan",
    "shared.ingest.intake",
    "shared.twins.applier",
    "shared.twins.pipeline",
)


def source_path(module: str, root: Path = SOURCE_ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interpreter_tags() -> dict[str, str]:
    """What a compiled module is bound to: the CPython version and the platform of its extension modules."""
    return {"cache_tag": str(sys.implementation.cache_tag), "ext_suffix": str(sysconfig.get_config_var("EXT_SUFFIX"))}


@dataclass(frozen=True)
class BuildCheck:
    usable: bool
    reason: str  # why the sources run instead, or what the compiled build holds
    modules: tuple[str, ...] = ()


def check_build(native_dir: Path = NATIVE_DIR, root: Path = SOURCE_ROOT) -> BuildCheck:
    """Whether the compiled build in ``native_dir`` may replace the sources under ``root``. Pure decision, no import."""
    manifest_path = native_dir / MANIFEST
    if not manifest_path.is_file():
        return BuildCheck(False, "no compiled build (python -m twinbridge native build)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        modules: dict[str, str] = manifest["modules"]
        tags: dict[str, str] = manifest["tags"]
        fmt = manifest["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return BuildCheck(False, f"unreadable manifest {manifest_path}: {exc}")
    if fmt != MANIFEST_FORMAT:
        return BuildCheck(False, f"manifest format {fmt!r}, expected {MANIFEST_FORMAT}: rebuild")
    here = interpreter_tags()
    if tags != here:
        return BuildCheck(False, f"built for {tags}, this interpreter is {here}: rebuild")
    suffix = here["ext_suffix"]
    for module, expected in modules.items():
        source = source_path(module, root)
        if not source.is_file():
            return BuildCheck(False, f"{source.relative_to(root)} no longer exists: rebuild")
        if digest(source) != expected:
            return BuildCheck(False, f"{source.relative_to(root)} changed since the compiled build: rebuild")
        compiled = native_dir.joinpath(*module.split(".")).with_suffix(suffix)
        if not compiled.is_file():
            return BuildCheck(False, f"{compiled} is missing: rebuild")
    if not (native_dir / f"{RUNTIME_MODULE}{suffix}").is_file():
        return BuildCheck(False, f"{native_dir / (RUNTIME_MODULE + suffix)} is missing: rebuild")
    return BuildCheck(True, f"compiled with mypyc {manifest.get('mypy', '?')}", tuple(modules))


_state = BuildCheck(False, "not activated")


def activate(package_path: list[str], package: str = "shared") -> BuildCheck:
    """Called by ``shared/__init__.py`` with its ``__path__``: compiled modules first, when the build is usable."""
    global _state
    if os.environ.get(PURE_PYTHON_ENV, "").strip().lower() in ("1", "true", "yes"):
        _state = BuildCheck(False, f"{PURE_PYTHON_ENV} is set")
        return _state
    _state = check_build()
    if not _state.usable:
        return _state
    added_to_sys_path = str(NATIVE_DIR) not in sys.path
    if added_to_sys_path:
        sys.path.append(str(NATIVE_DIR))
    try:
        importlib.import_module(RUNTIME_MODULE)  # a build that cannot load here (wrong libc, …) fails now, not later
    except ImportError as exc:
        if added_to_sys_path:
            sys.path.remove(str(NATIVE_DIR))
        _state = BuildCheck(False, f"the compiled build does not load here ({exc}); the sources run")
        return _state
    package_path.insert(0, str(NATIVE_DIR.joinpath(*package.split("."))))
    return _state


def describe() -> str:
    """One line for logs and reports: which core runs, and why."""
    compiled = in_use()
    if compiled:
        return f"compiled core: {len(compiled)} modules ({_state.reason})"
    return f"pure-Python core ({_state.reason})"


def status() -> BuildCheck:
    return _state


def in_use() -> list[str]:
    """The compiled modules actually loaded (an extension module, not a source file), for reports."""
    suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
    return sorted(name for name in COMPILED_MODULES
                  if str(getattr(sys.modules.get(name), "__file__", "") or "").endswith(suffix))
