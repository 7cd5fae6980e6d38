"""Colab's "Run all", simulated: the package installed from a wheel (not the checkout), the notebook run on its own
from an empty folder. A notebook may read files only through the package (``condgan_lib.artifacts``), never through
the working folder.

Two of the notebooks that read stored files (the quick ones) are executed this way; every stored file any notebook
names is looked up in the installed copy, and every notebook is checked statically for relative paths.
"""
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
READS_STORED_FILES = [p for p in NOTEBOOKS if "artifacts.path(" in p.read_text() or "artifacts.ROOT" in p.read_text()]
# executed whole from an empty folder: the quick ones. The others (minutes each, already executed by nbval) are checked
# by resolving every stored file they name in the installed copy (test_every_stored_file_a_chapter_names_...).
EXECUTED_IN_THE_SIMULATION = [p for p in READS_STORED_FILES if p.stem in ("conditional", "text_to_image")]


def stored_files_named(path: Path) -> set[str]:
    """The ``artifacts.path("...")`` arguments in a notebook's code; ``{...}`` in an f-string becomes a glob ``*``."""
    found = set()
    for source in code_of(path):
        for node in ast.walk(ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith("%")))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "path" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                elif isinstance(arg, ast.JoinedStr):
                    found.add("".join(v.value if isinstance(v, ast.Constant) else "*" for v in arg.values))
    return found


def code_of(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def relative_paths(source: str) -> list[str]:
    """String literals handed to ``open``/``Path``/``read_*`` that are relative paths (magics and shell lines aside)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            value = node.args[0].value
            if name in ("open", "Path", "read_text", "read_bytes", "load", "imread", "Image") and \
                    isinstance(value, str) and value and not value.startswith(("/", "http")):
                found.append(value)
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_opens_a_path_relative_to_its_folder(path):
    assert [p for source in code_of(path) for p in relative_paths(source)] == []


def test_the_static_check_finds_a_relative_path():
    assert relative_paths('x = json.loads(Path("artifacts/a.json").read_text())') == ["artifacts/a.json"]
    assert relative_paths('artifacts.path("a.json")\nopen("/tmp/x")') == []


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """condgan_lib built into a wheel and installed into a folder of its own, without its dependencies: the
    dependencies come from this environment, as Colab's come preinstalled."""
    work = tmp_path_factory.mktemp("colab")
    source, wheels, site = work / "source", work / "wheels", work / "site"
    for name in ("pyproject.toml", "README.md", "LICENSE"):   # a copy, so that the build leaves the checkout alone
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "condgan_lib", source / "condgan_lib", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(source)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(wheels.glob("condgan_lib-*.whl"))
    t0 = time.perf_counter()
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    print(f"pip install of the wheel ({wheel.stat().st_size / 1e6:.1f} MB): {time.perf_counter() - t0:.1f} s")
    return site


def test_the_wheel_carries_the_checkpoints_and_the_stored_artifacts(installed):
    code = ("import condgan_lib, condgan_lib.artifacts as a; print(condgan_lib.__file__); "
            "print(len(condgan_lib.list_pretrained()), sorted(p.name for p in a.ROOT.iterdir()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=installed.parent,
                          env={**os.environ, "PYTHONPATH": str(installed)})
    assert done.returncode == 0, done.stderr[-2000:]
    where, listing = done.stdout.splitlines()
    assert where.startswith(str(installed))
    count, names = listing.split(" ", 1)
    assert int(count) >= 16 and "mnist-projection" in names and "bench_cpu.txt" in names


def test_every_stored_file_a_chapter_names_is_in_the_installed_package(installed):
    names = sorted(set().union(*(stored_files_named(p) for p in READS_STORED_FILES)))
    assert "diffusion/sweeps.json" in names and "lr_rule/*.json" in names, names
    code = ("import json, sys, condgan_lib.artifacts as a\n"
            "print(json.dumps({n: [str(p) for p in a.ROOT.glob(n)] for n in json.loads(sys.argv[1])}))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(names)], capture_output=True, text=True,
                          cwd=installed.parent, env={**os.environ, "PYTHONPATH": str(installed)})
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert all(found[n] and all(p.startswith(str(installed)) for p in found[n]) for n in names), found


@pytest.mark.parametrize("path", EXECUTED_IN_THE_SIMULATION, ids=lambda p: p.name)
def test_a_notebook_that_reads_stored_files_runs_from_an_empty_folder(path, installed, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(installed))   # the kernel imports the installed copy, not the checkout
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(
        "import condgan_lib, os\n"
        f"assert condgan_lib.__file__.startswith({str(installed)!r}), condgan_lib.__file__\n"
        "assert not os.listdir('.')"))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
