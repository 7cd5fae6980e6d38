"""The book's structure: every notebook starts with the Colab setup cell, and it names the repository of _config.yml."""
import json
import re
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

import condgan_lib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import sync_setup_cell  # noqa: E402
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def test_there_are_chapters():
    assert NOTEBOOKS, "book/ holds no notebooks"


def test_config_names_one_repository_and_branch():
    repo = CONFIG["repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repo["url"])
    assert repo["branch"]
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["execute"]["execute_notebooks"] == "off"  # stored outputs; nbval proves they are fresh


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_the_colab_setup_cell_of_config(path):
    """The cell is written by scripts/sync_setup_cell.py from _config.yml; removed from the site, kept in the file."""
    cells = json.loads(path.read_text())["cells"]
    first = cells[0]
    assert first["cell_type"] == "code" and "remove-cell" in first.get("metadata", {}).get("tags", [])
    assert "".join(first["source"]) == sync_setup_cell.setup_cell_source(), \
        f"{path.name}: run python scripts/sync_setup_cell.py"


def test_the_release_colab_installs_is_the_package_version():
    """Colab buttons open, and setup cells install, the tag v<version> (README: how to publish)."""
    assert CONFIG["repository"]["branch"] == f"v{condgan_lib.__version__}"


def test_the_package_has_lower_bounds_only_so_colab_keeps_its_torch():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert deps and not [d for d in deps if "<" in d or "==" in d], deps


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_with_no_errors(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert all(c.get("execution_count") is not None for c in code[1:]), f"{path.name} has unexecuted cells"
    assert not [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_toc_lists_every_notebook_and_only_existing_files():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*(\S+)", toc))
    for nb in NOTEBOOKS:
        assert f"book/{nb.stem}" in listed, f"{nb.name} is not in _toc.yml"
    for entry in listed:
        assert (ROOT / f"{entry}.ipynb").exists() or (ROOT / f"{entry}.md").exists(), entry


def test_every_cited_key_is_in_the_bibliography():
    bib = set(re.findall(r"@\w+\{([^,]+),", (ROOT / "references.bib").read_text()))
    cited = set()
    for page in [*NOTEBOOKS, *(ROOT / "book").glob("*.md")]:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited <= bib, f"cited but missing from references.bib: {sorted(cited - bib)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ci_markers_are_cell_tags_not_comments_in_visible_code(path):
    """nbval reads the tag nbval-ignore-output; a reader should not see '# NBVAL_...' in the page's code."""
    cells = json.loads(path.read_text())["cells"]
    marked = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and "# NBVAL_" in "".join(c["source"])]
    assert marked == [], f"{path.name}: cells {marked} carry nbval comments; use the tag nbval-ignore-output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_run_times_are_kept_in_the_notebook_but_not_shown(path):
    cells = json.loads(path.read_text())["cells"]
    timing = [c for c in cells if c["cell_type"] == "code" and "chapter_start" in "".join(c["source"])
              and "perf_counter() - chapter_start" in "".join(c["source"])]
    assert all("remove-cell" in c["metadata"].get("tags", []) for c in timing), path.name


def visible_code_cells(path: Path) -> list[tuple[int, dict]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"
            and not {"remove-cell", "remove-input"} & set(c["metadata"].get("tags", []))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_code_a_reader_sees_fits_88_columns(path):
    """book/ruff.toml formats the cells to 88 columns; strings and comments are wrapped by hand."""
    long = [(i, len(line)) for i, c in visible_code_cells(path) for line in "".join(c["source"]).splitlines()
            if len(line) > 88]
    assert long == [], f"{path.name}: (cell, length) of lines over 88 columns: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_printed_lines_fit_the_text_column(path):
    """100 characters fit the column at 1280 px; wider results are tables (condgan_lib.viz.Table)."""
    long = []
    for i, c in visible_code_cells(path):
        if "remove-output" in c["metadata"].get("tags", []):
            continue
        for out in c.get("outputs", []):
            data = out.get("data", {})
            text = "".join(out["text"]) if out["output_type"] == "stream" else \
                "".join(data["text/plain"]) if set(data) == {"text/plain"} else ""
            long += [(i, len(line)) for line in text.splitlines() if len(line) > 100]
    assert long == [], f"{path.name}: (cell, length) of printed lines over 100 characters: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_says_what_it_shows(path):
    """The page's alt text of a figure comes from its cell's metadata (mystnb.image.alt), else it is a file name."""
    missing = [i for i, c in visible_code_cells(path)
               if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
               and len(c["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")) < 20]
    assert missing == [], f"{path.name}: figures without an alt text in cells {missing}"
