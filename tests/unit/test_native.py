"""The compiled core (shared/native.py): used only when it matches every source byte, and it is what runs in CI."""

from __future__ import annotations

import ast
import importlib
import json
import os
import shutil
from pathlib import Path

import pytest

from shared import native

MODULES = ("shared.ingest.timeparse", "shared.ingest.guard")


def _fake_build(tmp_path: Path) -> tuple[Path, Path]:
    """A source tree with two modules and a 'compiled build' of them (the extension files only need to exist)."""
    root, build = tmp_path / "app", tmp_path / "app" / ".build" / "native"
    suffix = native.interpreter_tags()["ext_suffix"]
    for module in MODULES:
        source = native.source_path(module, root)
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(native.source_path(module), source)
        compiled = build.joinpath(*module.split(".")).with_suffix(suffix)
        compiled.parent.mkdir(parents=True, exist_ok=True)
        compiled.write_bytes(b"\x7fELF")
    (build / f"{native.RUNTIME_MODULE}{suffix}").write_bytes(b"\x7fELF")
    manifest = {"format": native.MANIFEST_FORMAT, "tags": native.interpreter_tags(), "mypy": "x",
                "modules": {m: native.digest(native.source_path(m, root)) for m in MODULES}}
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    return root, build


def test_a_build_that_matches_every_source_is_usable(tmp_path):
    root, build = _fake_build(tmp_path)
    check = native.check_build(build, root)
    assert check.usable, check.reason
    assert check.modules == MODULES


def test_no_build_means_the_sources(tmp_path):
    check = native.check_build(tmp_path / "nothing", tmp_path)
    assert not check.usable and "no compiled build" in check.reason


def test_an_edited_source_is_never_shadowed_by_its_stale_compiled_module(tmp_path):
    root, build = _fake_build(tmp_path)
    source = native.source_path("shared.ingest.guard", root)
    source.write_text(source.read_text() + "\n# edited\n")
    check = native.check_build(build, root)
    assert not check.usable
    assert "shared/ingest/guard.py changed since the compiled build" in check.reason


def test_a_build_for_another_interpreter_or_platform_is_refused(tmp_path):
    root, build = _fake_build(tmp_path)
    manifest = json.loads((build / native.MANIFEST).read_text())
    manifest["tags"]["ext_suffix"] = ".cpython-311-darwin.so"
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    check = native.check_build(build, root)
    assert not check.usable and "built for" in check.reason and "darwin" in check.reason


def test_a_missing_compiled_module_or_a_torn_manifest_is_refused(tmp_path):
    root, build = _fake_build(tmp_path)
    next(build.rglob("guard*")).unlink()
    assert "is missing" in native.check_build(build, root).reason
    (build / native.MANIFEST).write_text("{not json")
    assert "unreadable manifest" in native.check_build(build, root).reason


def test_the_modules_in_use_are_the_ones_the_environment_asks_for():
    """`make test` runs the suite once compiled (TWINBRIDGE_EXPECT_NATIVE=1) and once with TWINBRIDGE_PURE_PYTHON=1:
    each run checks here that it really ran what it says."""
    for module in native.COMPILED_MODULES:
        importlib.import_module(module)
    if os.environ.get(native.PURE_PYTHON_ENV):
        assert native.in_use() == []
    elif os.environ.get("TWINBRIDGE_EXPECT_NATIVE") == "1":
        assert native.status().usable, native.status().reason
        assert native.in_use() == sorted(native.COMPILED_MODULES)
    else:
        pytest.skip(f"neither {native.PURE_PYTHON_ENV} nor TWINBRIDGE_EXPECT_NATIVE set (make test sets them)")


def _reused_except_names(source: str) -> list[str]:
    """One name bound by `except A as e` and `except B as e` in one function: mypyc gives the variable the first
    handler's type, so the second handler raises TypeError once compiled (found by this suite, run compiled)."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            types: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                    types.setdefault(node.name, set()).add(ast.unparse(node.type))
            found += [f"{function.name}:{name}" for name, kinds in types.items() if len(kinds) > 1]
    return found


def test_compiled_modules_never_reuse_an_except_name_for_another_type():
    assert _reused_except_names("def f():\n try: pass\n except A as e: pass\n except B as e: pass\n") == ["f:e"]
    offenders = {m: _reused_except_names(native.source_path(m).read_text()) for m in native.COMPILED_MODULES}
    assert {m: names for m, names in offenders.items() if names} == {}


def test_a_build_that_does_not_load_falls_back_to_the_sources_instead_of_failing_the_host(tmp_path):
    """A manifest that matches every source but extension files that cannot load (another libc, a torn copy): the
    app must still start, on the sources, and say why. Run in a child process on a copy of shared/."""
    import subprocess
    import sys

    app = tmp_path / "app"
    shutil.copytree(native.SOURCE_ROOT / "shared", app / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    build = app / ".build" / "native"
    suffix = native.interpreter_tags()["ext_suffix"]
    for module in native.COMPILED_MODULES:
        compiled = build.joinpath(*module.split(".")).with_suffix(suffix)
        compiled.parent.mkdir(parents=True, exist_ok=True)
        compiled.write_bytes(b"not an ELF file")
    (build / f"{native.RUNTIME_MODULE}{suffix}").write_bytes(b"not an ELF file")
    manifest = {"format": native.MANIFEST_FORMAT, "tags": native.interpreter_tags(), "mypy": "x",
                "modules": {m: native.digest(native.source_path(m, app)) for m in native.COMPILED_MODULES}}
    (build / native.MANIFEST).write_text(json.dumps(manifest))
    assert native.check_build(build, app).usable  # the manifest alone would let it in

    probe = ("import shared.twins.pipeline; from shared import native; "
             "print(native.describe()); print(shared.twins.pipeline.__file__)")
    env = {k: v for k, v in os.environ.items() if k != native.PURE_PYTHON_ENV}
    child = subprocess.run([sys.executable, "-c", probe], cwd=app, env=env, capture_output=True, text=True,
                           timeout=60, check=False)
    assert child.returncode == 0, child.stderr
    description, loaded = child.stdout.splitlines()
    assert description.startswith("pure-Python core (the compiled build does not load here")
    assert loaded == str(app / "shared" / "pipeline.py")


def _init_mismatches(source: str) -> list[str]:
    """Dataclasses with ``init=False`` (their __init__ is written out so that it compiles): the __init__ must take
    every field, in order, and set each one; a field added to the class alone would break repr, == and slots."""
    found = []
    for cls in ast.walk(ast.parse(source)):
        if not isinstance(cls, ast.ClassDef):
            continue
        if not any(isinstance(d, ast.Call) and any(k.arg == "init" and isinstance(k.value, ast.Constant)
                                                   and k.value.value is False for k in d.keywords)
                   for d in cls.decorator_list):
            continue
        fields = [s.target.id for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
        init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
        if init is None:
            found.append(f"{cls.name}: no __init__")
            continue
        params = [a.arg for a in init.args.args[1:]]
        assigned = [t.attr for s in ast.walk(init) if isinstance(s, ast.Assign) for t in s.targets
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"]
        if params != fields or sorted(assigned) != sorted(fields):
            found.append(f"{cls.name}: fields {fields}, __init__ takes {params} and sets {assigned}")
    return found


def test_written_out_inits_take_and_set_every_field_in_order():
    broken = "@dataclass(init=False)\nclass A:\n x: int\n y: int\n def __init__(self, x):\n  self.x = x\n"
    assert _init_mismatches(broken) == ["A: fields ['x', 'y'], __init__ takes ['x'] and sets ['x']"]
    checked = {m: _init_mismatches(native.source_path(m).read_text()) for m in native.COMPILED_MODULES}
    assert {m: problems for m, problems in checked.items() if problems} == {}
