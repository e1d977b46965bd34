"""The layers of docs/DEVELOPING.md, enforced by reading every import (``ast``, also imports inside functions).

Lower rows never import upper ones::

    command line   facevision/cli.py, facevision/__main__.py, facevision/commands/
    training       facevision/train/
    inference      every other module of facevision (predict, evaluate, benchmark, flame, fit, maps, model, data,
                   video, and the small shared modules config.py, env.py, _torchvision_compat.py)
    data           data_prep/            (never imports facevision)
    base           meshing/              (imports neither facevision nor data_prep)

A test in tests/test_conventions.py also checks the run-time side in a fresh process (``import meshing`` loads
neither package; inference modules do not load facevision.train).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"base": 0, "data": 1, "inference": 2, "training": 3, "command line": 4}

# Known violations, each with the reason it is left for now: (importing module, imported module). Empty today.
ALLOWED: set[tuple[str, str]] = set()


def layer_of(module: str) -> str | None:
    """The layer of a project module (dotted name), None for anything outside the project."""
    top = module.split(".")[0]
    if top == "meshing":
        return "base"
    if top == "data_prep":
        return "data"
    if top != "facevision":
        return None
    parts = module.split(".")
    second = parts[1] if len(parts) > 1 else ""
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
    assert layer_of("meshing.fileio") == "base" and layer_of("data_prep.crop") == "data"
    assert layer_of("facevision.predict.batch") == "inference" and layer_of("facevision.env") == "inference"
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


@pytest.mark.parametrize("package, forbidden", [("data_prep", "facevision"), ("meshing", "facevision"),
                                                ("meshing", "data_prep")])
def test_lower_packages_name_no_upper_package(package, forbidden):
    """The table's two named rules, stated on their own."""
    hits = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in sorted((ROOT / package).rglob("*.py"))
            for name, line in _imports(p, _module_name(p)) if name.split(".")[0] == forbidden]
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
