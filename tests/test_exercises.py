"""condgan_lib.exercises: checks that never print their target, and hidden tests of the reader's functions; and every
chapter's exercises are built on it, with at least one where the reader writes code."""
import json
import re
from pathlib import Path

import pytest
import torch

from condgan_lib import exercises

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "book").glob("*.ipynb"))


def test_a_value_check_says_right_or_wrong_without_the_target(capsys):
    ex = exercises.Exercises(targets={1: (0.875, 0.01, "D*(0)"), 2: ("b", None, "choice")})
    assert ex.check(1, None) is None and "set your D*(0)" in capsys.readouterr().out
    assert ex.check(1, 0.88) is True and ex.check(1, 0.5) is False
    assert "0.875" not in capsys.readouterr().out
    assert ex.check(2, " B ") is True and ex.check(2, "a") is False


def test_a_target_that_takes_a_computation_is_made_once():
    calls = []
    ex = exercises.Exercises(targets={3: (lambda: calls.append(1) or 2.0, 0.1, "loss")})
    assert ex.check(3, None) is None and calls == []          # nothing computed before an answer exists
    assert ex.check(3, 2.05) and ex.check(3, 1.0) is False and calls == [1]


def test_a_function_check_runs_hidden_tests(capsys):
    reference = lambda x: x.square().sum()  # noqa: E731
    ex = exercises.Exercises(tests={1: lambda fn: exercises.compare_outputs(fn, reference, [(torch.arange(3.0),)])})

    def unwritten(x):
        raise NotImplementedError

    assert ex.check_function(1, unwritten) is None and "write the function" in capsys.readouterr().out
    assert ex.check_function(1, lambda x: (x * x).sum()) is True
    assert ex.check_function(1, lambda x: x.sum()) is False and "differs" in capsys.readouterr().out
    assert ex.check_function(1, lambda x: x[10]) is False and "IndexError" in capsys.readouterr().out
    assert exercises.compare_outputs(lambda: torch.zeros(2), lambda: torch.zeros(3), [()])[0].endswith("expected (3,)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_chapter_page_shows_no_target_and_has_a_coding_exercise(path):
    cells = json.loads(path.read_text())["cells"]
    if not any("".join(c["source"]).startswith("## Exercises") for c in cells if c["cell_type"] == "markdown"):
        pytest.skip(f"{path.name} has no exercises")
    visible = [c for c in cells if c["cell_type"] == "code" and not {"remove-cell", "hide-cell"} &
               set(c["metadata"].get("tags", []))]
    checks = [c for c in visible if "ex.check" in "".join(c["source"])]
    assert checks, f"{path.name}: exercises without checks"
    for c in checks:
        assert re.fullmatch(r"ex\.check(_function)?\(\d+, \w+\)", "".join(c["source"]).strip()), "".join(c["source"])
        assert "remove-output" in c["metadata"].get("tags", [])
    assert any("check_function" in "".join(c["source"]) for c in checks), f"{path.name}: no exercise writes code"
    assert not any(re.search(r"\bcheck\(answer_", "".join(c["source"])) for c in visible)
