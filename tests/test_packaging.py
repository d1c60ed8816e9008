"""The built wheel ships every module the product imports (a non-editable install works)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cameras", "pipeline", "shards", "trainer")
#: top-level folders a wheel build must not copy (environments, data, outputs, build leftovers);
#: only at the root: ``pipeline/build/`` is a package
NOT_SOURCES = {".git", ".venv", ".venv-anny", "data", "out", "runs", "build"}


def _not_sources(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    return skip | (NOT_SOURCES & set(names) if Path(folder) == REPO else set())


def first_party_imports(source: str) -> set[str]:
    """Dotted names of the modules ``source`` imports whose top level is a folder of the repo."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if (REPO / n.split(".")[0]).is_dir()}


def wheel_module(name: str, files: set[str]) -> bool:
    """Whether the dotted module (or package) ``name`` is a file in the wheel."""
    path = name.replace(".", "/")
    return f"{path}.py" in files or f"{path}/__init__.py" in files


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    """The file list of the wheel built from a copy of the sources (the tree stays clean)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=_not_sources)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*cmd, "-q", str(src), "-w", str(tmp / "dist")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (whl,) = (tmp / "dist").glob("*.whl")
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist())


def test_wheel_ships_every_first_party_module_the_packages_import(wheel_files):
    missing = []
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            rel = f.relative_to(REPO).as_posix()
            assert rel in wheel_files, f"{rel}: not in the wheel"
            for name in sorted(first_party_imports(f.read_text())):
                # `from pkg import name` may name a function, not a module: then pkg must ship
                parent = name.rpartition(".")[0]
                if not (wheel_module(name, wheel_files) or wheel_module(parent, wheel_files)):
                    missing.append(f"{rel} imports {name}")
    assert not missing, "modules the wheel does not ship:\n" + "\n".join(missing)
    assert "trainer/h36m_standin.py" in wheel_files  # `trainer ablate --h36m-standin`
