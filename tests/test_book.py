"""The book's structure: every notebook starts with the Colab setup cell, and it names the repository of _config.yml."""
import ast
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


# a visible assert is a numerical check of a formula the text derives (the error of the library against the formula
# or a hand computation): every other check (a trained model's floor, a regression, a cross-check with the manifest)
# sits in the next cell, tagged remove-cell, where nbval still runs it and the page does not show it
FORMULA_CHECK = re.compile(r"\berr|by_hand|closed_form|fid_self|at_equilibrium|math\.log|library|2\*\*-p")
MAX_VISIBLE_ASSERTS = 8


def asserts_in(code: str) -> list[str]:
    tree = ast.parse("\n".join("pass" if line.lstrip().startswith(("%", "!")) else line
                               for line in code.splitlines()))
    return [ast.get_source_segment(code, n) or "" for n in ast.walk(tree) if isinstance(n, ast.Assert)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_visible_asserts_only_check_formulas(path):
    visible = [(i, a) for i, c in visible_code_cells(path) for a in asserts_in("".join(c["source"]))]
    hidden = [a for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"
              and "remove-cell" in c["metadata"].get("tags", []) for a in asserts_in("".join(c["source"]))]
    print(f"{path.name}: {len(visible)} visible asserts, {len(hidden)} in removed cells")
    assert len(visible) <= MAX_VISIBLE_ASSERTS, f"{path.name}: {len(visible)} visible asserts"
    others = [(i, a.splitlines()[0]) for i, a in visible if not FORMULA_CHECK.search(a)]
    assert others == [], f"{path.name}: asserts a reader sees that check no formula (move them to a removed cell)"
    assert hidden, f"{path.name}: no checks in removed cells: what does nbval assert about this chapter?"


# each chapter: at most 3,500 words of prose and 350 lines of code a reader sees without opening anything (cells
# tagged hide-input are collapsed behind a toggle, remove-cell and remove-input ones are not on the page)
MAX_WORDS, MAX_VISIBLE_CODE_LINES = 3500, 350


def prose_words(markdown: str) -> int:
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)       # directives' bodies and code blocks
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]+\$", " x ", text)                   # an inline formula reads as one word
    text = re.sub(r"\{cite[^}]*\}`[^`]*`|<[^>]+>|\]\([^)]*\)", " ", text)
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'\u2019-]*", text))


def chapter_length(path: Path) -> tuple[int, int]:
    cells = json.loads(path.read_text())["cells"]
    words = sum(prose_words("".join(c["source"])) for c in cells if c["cell_type"] == "markdown")
    lines = sum(1 for _, c in visible_code_cells(path) if "hide-input" not in c["metadata"].get("tags", [])
                for line in "".join(c["source"]).splitlines() if line.strip())
    return words, lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_length(path):
    words, lines = chapter_length(path)
    print(f"{path.name}: {words} words of prose, {lines} lines of visible code")
    assert words <= MAX_WORDS, f"{path.name}: {words} words of prose (at most {MAX_WORDS})"
    assert lines <= MAX_VISIBLE_CODE_LINES, f"{path.name}: {lines} lines of visible code (at most " \
                                            f"{MAX_VISIBLE_CODE_LINES}; collapse plotting code with hide-input)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_opens_with_a_chinese_guide(path):
    """Right after the title: an admonition titled 中文导读 of at most 400 characters (what the chapter answers in the
    article, what the reader will be able to do)."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]
    guide = [c for c in cells[:3] if "```{admonition} 中文导读" in "".join(c["source"])]
    assert guide, f"{path.name}: no 中文导读 admonition among the first markdown cells"
    body = re.search(r"```\{admonition\} 中文导读\n(?::[^\n]*\n)*(.*?)```", "".join(guide[0]["source"]), re.S)
    assert body, f"{path.name}: the 中文导读 admonition is not closed"
    chars = len(re.sub(r"\s", "", body.group(1)))
    assert 80 <= chars <= 400, f"{path.name}: 中文导读 has {chars} characters (80 to 400)"
    assert len(re.findall(r"[\u4e00-\u9fff]", body.group(1))) > chars / 2, f"{path.name}: 中文导读 is not in Chinese"
