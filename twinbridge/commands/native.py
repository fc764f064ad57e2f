"""``python -m twinbridge native build|status|clean``: the compiled build of the pure core (shared/native.py).

``build`` compiles ``shared.native.COMPILED_MODULES`` with mypyc (from mypy, a dev dependency) into ``.build/native/``
and writes the manifest that ``shared`` checks at import. It needs a C compiler and the Python headers. A module
compiled here is bound to this CPython version and platform: a deployment must be built on the host's platform
(Linux x86-64, the app's Python version; docs/deploy.md). ``status`` says whether the compiled build would be used
and why not. ``clean`` removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from shared import native


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("native", help="build, check or remove the compiled core (mypyc)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("build", "status", "clean"))
    parser.add_argument("--if-needed", action="store_true", help="build only when the current build is not usable")
    parser.add_argument("--json", action="store_true", help="status as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "clean":
        shutil.rmtree(native.NATIVE_DIR.parent, ignore_errors=True)
        print(f"removed {native.NATIVE_DIR.parent}")
        return 0
    if args.action == "status":
        check = native.check_build()
        forced = native.PURE_PYTHON_ENV if native.status().reason.startswith(native.PURE_PYTHON_ENV) else None
        report = {"usable": check.usable, "reason": check.reason, "modules": list(check.modules),
                  "forced_pure_python_by": forced, "in_use": native.in_use()}
        print(json.dumps(report, indent=2) if args.json else
              f"{'usable' if check.usable else 'not usable'}: {check.reason}")
        return 0
    if args.if_needed:
        check = native.check_build()
        if check.usable:
            print(f"native build: up to date ({check.reason})")
            return 0
        print(f"native build: needed ({check.reason})")
    return build()


def build() -> int:
    try:
        from mypyc.build import mypycify
        from setuptools import Distribution
    except ImportError as exc:
        print(f"native build: {exc.name} is not installed (requirements-dev.txt has mypy and setuptools)",
              file=sys.stderr)
        return 2
    root = native.SOURCE_ROOT
    sources = {module: native.source_path(module) for module in native.COMPILED_MODULES}
    before = {module: native.digest(path) for module, path in sources.items()}
    staging = native.NATIVE_DIR.parent / "native-staging"  # beside the target: the final rename stays on one disk
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    print(f"native build: compiling {len(sources)} modules with mypyc into {native.NATIVE_DIR} …", flush=True)
    os.chdir(root)  # mypy reads its configuration (pyproject.toml) from the working directory
    # Generated C and object files go to a temporary directory: only .build/native/ is left (and deployed).
    try:
        with tempfile.TemporaryDirectory(prefix="twinbridge-native-") as work:
            extensions = mypycify([str(path.relative_to(root)) for path in sources.values()], opt_level="3",
                                  target_dir=os.path.join(work, "c"), group_name=native.RUNTIME_GROUP)
            distribution = Distribution({
                "name": "twinbridge-native", "ext_modules": extensions,
                "script_name": "twinbridge-native",
                "script_args": ["-q", "build_ext", "--build-lib", str(staging),
                                "--build-temp", os.path.join(work, "obj")],
            })
            distribution.parse_command_line()
            distribution.run_commands()
    except (Exception, SystemExit) as exc:  # mypy's errors exit; a missing compiler raises from setuptools
        shutil.rmtree(staging, ignore_errors=True)
        print(f"native build failed ({type(exc).__name__}: {exc}); the current build, if any, is unchanged and "
              f"is used only if it still matches the sources: `python -m twinbridge native status`", file=sys.stderr)
        return 1
    after = {module: native.digest(path) for module, path in sources.items()}
    changed = sorted(module for module in sources if before[module] != after[module])
    if changed:
        print(f"native build: sources changed while compiling ({', '.join(changed)}); run it again", file=sys.stderr)
        return 1
    manifest = {"format": native.MANIFEST_FORMAT, "tags": native.interpreter_tags(), "mypy": _mypy_version(),
                "modules": before}
    (staging / native.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    # Swap in the complete build at once: an interrupted build never leaves a half-written one to be used.
    shutil.rmtree(native.NATIVE_DIR, ignore_errors=True)
    staging.rename(native.NATIVE_DIR)
    check = native.check_build()
    print(f"native build: {len(sources)} modules in {time.perf_counter() - started:.1f} s; {check.reason}")
    return 0 if check.usable else 1


def _mypy_version() -> str:
    from mypy.version import __version__

    return str(__version__)
