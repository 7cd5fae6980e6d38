"""The library's shape: imports go one way, no import hides inside a function, ``import condgan_lib`` stays light.

The package is read as source (``ast``), so the checks see every module, imported or not.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "condgan_lib"
MODULES = {p.stem: p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}

# import statements allowed inside a function body, each with its reason; package modules never qualify.
# torchvision takes 1.5 s to import (it brings in torch._dynamo) and only these functions use it: imported at module
# level it would slow every command and every process the tests start, which never call them
_TORCHVISION = "torchvision, imported where it is used (1.5 s at start-up otherwise)"
ALLOWED_FUNCTION_IMPORTS: dict[tuple[str, str], str] = {
    ("data", "_download_urls"): _TORCHVISION, ("data", "download_url"): _TORCHVISION,
    ("diffusion", "train_diffusion"): _TORCHVISION, ("gan", "write_run_pictures"): _TORCHVISION,
    ("viz", "image_grid"): _TORCHVISION,
}

# the layers of condgan_lib/__init__.py's docstring: a module may import only from its own layer or lower ones
LAYERS = {
    "repro": 0, "fileio": 0, "distributed": 0, "viz": 0, "exercises": 0,
    "data": 1, "shapes": 1, "text": 1, "configs": 1,
    "losses": 2, "layers": 2, "models": 2, "engine": 2,
    "registry": 3, "hub": 3, "runs": 3,
    "toy": 4, "gan": 4, "classifier": 4, "metrics": 4, "probe": 4, "text2img": 4, "clip": 4, "diffusion": 4,
    "unclip": 4,
    "train": 5, "evaluate": 5, "bench": 5, "export": 5,
}


def package_imports(path: Path) -> list[tuple[str, ast.stmt]]:
    """``(imported module of the package, node)`` for every import of a sibling module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.append((node.module.split(".")[0], node))
            else:
                found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("condgan_lib."):
            found.append((node.module.split(".")[1], node))
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".")[1], node) for a in node.names if a.name.startswith("condgan_lib.")]
    return found


def graph() -> dict[str, set[str]]:
    return {name: {target for target, _ in package_imports(path) if target in MODULES}
            for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert set(MODULES) == set(LAYERS), "add new modules to LAYERS (and to the docstring of __init__.py)"


def test_no_import_inside_a_function():
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)) and \
                            (name, node.name) not in ALLOWED_FUNCTION_IMPORTS:
                        offenders.append(f"{name}.py:{inner.lineno} in {node.name}()")
    assert offenders == [], "imports inside functions: " + ", ".join(offenders)
    assert all(reason.strip() for reason in ALLOWED_FUNCTION_IMPORTS.values())


def test_imports_go_down_the_layers():
    upward = [f"{a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]})"
              for a, targets in graph().items() for b in targets if LAYERS[b] > LAYERS[a]]
    assert upward == []


def test_the_import_graph_has_no_cycle():
    edges, state, cycles = graph(), {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_detector_finds_a_cycle_and_a_function_import(tmp_path):
    """The checks above can fail: a module that imports itself inside a function is caught by both."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from . import bad\n")
    assert [target for target, _ in package_imports(bad)] == ["bad"]
    nodes = [n for n in ast.walk(ast.parse(bad.read_text())) if isinstance(n, ast.FunctionDef)]
    assert any(isinstance(inner, ast.ImportFrom) for inner in ast.walk(nodes[0]))


def test_every_family_is_registered_by_the_module_the_registry_names():
    from condgan_lib import registry
    families = registry.families()
    assert set(families) == set(registry.FAMILY_MODULES)
    for name, family in families.items():
        assert family.trainer.__module__ == registry.FAMILY_MODULES[name], name
        assert family.chapter.startswith("book/"), name
        assert (PACKAGE.parent / family.chapter).exists(), name


def test_every_module_names_the_chapter_it_serves():
    """Chapter modules and commands open with the chapter they serve, by name; the layers below say whom they serve."""
    for name, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if LAYERS[name] >= 4:
            assert re.search(r'[Cc]hapters?:?\s+"', doc), f'{name}.py: open the docstring with Chapter "TITLE"'
        elif LAYERS[name] >= 2:
            assert "chapter" in doc.lower() or "command" in doc.lower(), f"{name}.py: say which chapters it serves"


@pytest.mark.parametrize("module", ["condgan_lib"])
def test_import_condgan_lib_loads_no_training_clip_or_text_code(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('condgan_lib')))"
    loaded = eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    heavy = {"condgan_lib." + m for m in ("engine", "runs", "train", "gan", "clip", "unclip", "text", "text2img",
                                          "probe", "metrics", "diffusion", "data", "shapes")}
    assert heavy.isdisjoint(loaded), sorted(heavy & set(loaded))


def test_graph_depth():
    """The longest chain of imports inside the package (reported in the README's layout section)."""
    edges = graph()
    depth = {}

    def longest(node):
        if node not in depth:
            depth[node] = 1 + max((longest(n) for n in edges[node]), default=0)
        return depth[node]

    assert max(longest(m) for m in edges) <= 8
