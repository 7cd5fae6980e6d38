"""Every chapter's exercises: checks that keep their targets out of the page.

Serves the "Exercises" section of every chapter. A chapter builds its ``Exercises`` in a cell that the site does not
show (targets and hidden tests live there); the reader's page has only the answer cells and ``ex.check(n, answer)``
or ``ex.check_function(n, my_function)``. Checks speak only when run (in Colab or Jupyter): an answer still ``None``,
or a function still raising ``NotImplementedError``, gets a one-line reminder, never the expected value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

Test = Callable[[Callable], Sequence[str]]   # a hidden test: the reader's function -> what is wrong (empty: right)


@dataclass
class Exercises:
    """The targets and hidden tests of one chapter's exercises.

    ``targets[n] = (expected, tolerance, what)`` for an exercise answered with a value (a number, or a string compared
    without case when the tolerance is None; ``expected`` may be a function that computes it when first needed);
    ``tests[n]`` for one answered with a function.
    """
    targets: dict[int, tuple[Any, float | None, str]] = field(default_factory=dict)
    tests: dict[int, Test] = field(default_factory=dict)

    def check(self, number: int, answer) -> bool | None:
        """Print whether ``answer`` is right for exercise ``number``; True/False, or None when not answered yet."""
        expected, tol, what = self.targets[number]
        if answer is None:
            print(f"Exercise {number}: set your {what} in the cell above, then run this cell.")
            return None
        if callable(expected):  # a target that takes a computation (e.g. a short training run): made when first needed
            expected = expected()
            self.targets[number] = (expected, tol, what)
        if tol is None:
            right = str(answer).strip().lower() == str(expected).lower()
            shown = repr(answer)
        else:
            right = abs(float(answer) - float(expected)) <= tol
            shown = f"{round(float(answer), 4) + 0.0:.4g}"   # + 0.0 turns -0.0 into 0.0
        print(f"Exercise {number}: {'right' if right else 'not quite'}, your {what} is {shown}."
              + ("" if right else " Look at the hint in the question and try again."))
        return right

    def check_function(self, number: int, function: Callable) -> bool | None:
        """Run the hidden tests of exercise ``number`` on the reader's ``function``; print what fails."""
        try:
            problems = list(self.tests[number](function))
        except NotImplementedError:
            print(f"Exercise {number}: write the function in the cell above (replace the `raise`), then run this cell.")
            return None
        except Exception as exc:  # the reader's code raised: say where, as a hint
            problems = [f"your function raised {type(exc).__name__}: {exc}"]
        if problems:
            print(f"Exercise {number}: not yet. " + "; ".join(problems[:3]))
            return False
        print(f"Exercise {number}: right, your function passes the hidden tests.")
        return True


def compare_outputs(function: Callable, reference: Callable, cases: Sequence[tuple], atol: float = 1e-5) -> list[str]:
    """Call ``function`` and ``reference`` on every tuple of arguments in ``cases``; describe the cases that differ."""
    problems = []
    for i, args in enumerate(cases):
        got, want = function(*args), reference(*args)
        got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
        if got.shape != want.shape:
            problems.append(f"case {i + 1}: the result has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        elif not torch.allclose(got, want, atol=atol, rtol=1e-4):
            problems.append(f"case {i + 1}: the result differs by up to {(got - want).abs().max().item():.3g}")
    return problems
