"""The layers of docs/DEVELOPING.md, enforced by reading every import (``ast``, also imports inside functions).

Lower rows never import upper ones::

    command line   facevision/cli.py, facevision/__main__.py, facevision/commands/
    training       facevision/train/
    inference      every other module of facevision (predict, video, evaluate, benchmark, flame, fit, maps,
                   model, data, and the small shared modules config.py, env.py, _torchvision_compat.py)
    data           data_prep/            (turns photos into datasets; imports only face, common and meshing)
    face           facevision/face/      (run-time face helpers: detect, crop, reference and face model, ...)
    meshing        meshing/              (maps -> mesh; imports only facevision.common)
    base           facevision/common/    (file IO, lazy imports, map conventions, config checks, geometry;
                                         imports nothing)

and data_prep is read only by the code that reads datasets or runs labelers as baselines (DATASET_READERS).
A test in tests/test_conventions.py also checks the run-time side in a fresh process (``import meshing`` loads
only facevision.common; inference modules do not load facevision.train).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"base": 0, "meshing": 1, "face": 2, "data": 3, "inference": 4, "training": 5, "command line": 6}
# The only facevision modules that may import data_prep (prefixes): they read datasets or run a labeler.
DATASET_READERS = ("facevision.commands", "facevision.benchmark", "facevision.data", "facevision.evaluate")

# Known violations, each with the reason it is left for now: (importing module, imported module). Empty today.
ALLOWED: set[tuple[str, str]] = set()


def layer_of(module: str) -> str | None:
    """The layer of a project module (dotted name), None for anything outside the project."""
    top = module.split(".")[0]
    if top == "meshing":
        return "meshing"
    if top == "data_prep":
        return "data"
    if top != "facevision":
        return None
    parts = module.split(".")
    second = parts[1] if len(parts) > 1 else ""
    if second == "common":
        return "base"
    if second == "face":
        return "face"
    if second in ("cli", "__main__", "commands"):
        return "command line"
    if second == "train":
        return "training"
    return "inference"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Every module ``path`` imports (absolute dotted names; relative imports resolved), with its line."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{a.name}", node.lineno) for a in node.names]  # "from pkg import submodule"
    return found


def _project_files() -> list[Path]:
    return sorted(p for pkg in ("meshing", "data_prep", "facevision") for p in (ROOT / pkg).rglob("*.py"))


def _violations() -> list[str]:
    out = []
    for path in _project_files():
        module = _module_name(path)
        mine = layer_of(module)
        for imported, line in _imports(path, module):
            theirs = layer_of(imported)
            if theirs is None or RANK[theirs] <= RANK[mine]:
                continue
            if (module, imported.rsplit(".", 1)[0]) in ALLOWED or (module, imported) in ALLOWED:
                continue
            out.append(f"{path.relative_to(ROOT)}:{line}: {mine} module {module} imports {imported} ({theirs})")
    return out


def test_layer_of_names_the_table_rows():
    assert layer_of("facevision.common.fileio") == "base" and layer_of("meshing.lift") == "meshing"
    assert layer_of("facevision.face.crop") == "face" and layer_of("data_prep.prepare") == "data"
    assert layer_of("facevision.predict.runner") == "inference" and layer_of("facevision.env") == "inference"
    assert layer_of("facevision.train.loop") == "training" and layer_of("facevision.commands.predict") == "command line"
    assert layer_of("facevision.cli") == "command line" and layer_of("numpy") is None


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The reader finds imports in function bodies and relative ones (what the layer rule must catch)."""
    f = ROOT / "data_prep" / "__init__.py"  # a real file: its imports are read the same way as any other's
    assert all(isinstance(name, str) for name, _ in _imports(f, "data_prep"))
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from facevision.train import loop\n    from . import sibling\n")
    names = {n for n, _ in _imports(probe, "data_prep.probe")}
    assert {"facevision.train", "facevision.train.loop", "data_prep", "data_prep.sibling"} <= names


def test_no_module_imports_a_higher_layer():
    """data_prep never imports facevision; meshing imports neither; inference never imports facevision.train;
    nothing below the command line imports facevision.cli or facevision.commands."""
    bad = _violations()
    assert not bad, "imports against docs/DEVELOPING.md's layer table:\n" + "\n".join(bad)


def _imports_under(folder: str) -> list[tuple[str, str, int]]:
    return [(str(p.relative_to(ROOT)), name, line) for p in sorted((ROOT / folder).rglob("*.py"))
            for name, line in _imports(p, _module_name(p))]


@pytest.mark.parametrize("folder, allowed", [
    ("data_prep", ("data_prep", "facevision.face", "facevision.common", "meshing")),
    ("meshing", ("meshing", "facevision.common")),
    ("facevision/face", ("facevision.face", "facevision.common")),
    ("facevision/common", ("facevision.common",)),
])
def test_lower_packages_import_only_what_the_table_allows(folder, allowed):
    """The table's named rules, stated on their own: which project packages each lower package may import."""
    project = ("facevision", "meshing", "data_prep")
    hits = [f"{f}:{line}: {name}" for f, name, line in _imports_under(folder)
            if name.split(".")[0] in project and name not in ("facevision",)
            and not any(name == a or name.startswith(a + ".") for a in allowed)]
    assert not hits, hits


def test_only_dataset_readers_import_data_prep():
    """Run-time code (predict, video, fit, maps, model, flame) never imports data_prep: what it needs of faces
    lives in facevision.face."""
    hits = [f"{f}:{line}: {name}" for f, name, line in _imports_under("facevision")
            if name.split(".")[0] == "data_prep"
            and not _module_name(ROOT / f).startswith(DATASET_READERS)]
    assert not hits, hits


def test_the_command_line_loads_no_numpy_while_building_parsers():
    """``facevision predict`` sets the thread variables before numpy loads, so building every parser (what
    ``facevision <command>`` does first) must not load numpy, nor any package of the lower layers that does."""
    import subprocess
    import sys

    code = ("import sys; from facevision.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('numpy', 'meshing', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
