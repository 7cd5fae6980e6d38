"""Every command answers a user's mistake with one line and exit status 2, never a traceback; and the generators
answer odd inputs (no labels, tiny truncation) clearly. Rows of the reliability review's table are named."""
import subprocess
import sys

import pytest
import torch

from condgan_lib import export, hub
from condgan_lib.models import Generator


def run(module, *args):
    return subprocess.run([sys.executable, "-m", f"condgan_lib.{module}", *args], capture_output=True, text=True,
                          timeout=300)


def one_line_error(result, message):
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and message in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("args, message", [
    (["mnist-projection", "--n", "5"], "multiple of 10"),          # row 42
    (["mnist-projection", "--n", "-10"], "--n must be positive"),   # row 42
    (["mnist-projection", "--n", "0"], "--n must be positive"),     # row 43
    (["no-such-model"], "not a shipped model with recorded metrics"),
])
def test_evaluate_mistakes(args, message):
    one_line_error(run("evaluate", *args), message)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0", "--skip-accuracy"], "must be at least 1"),                        # row 76
    (["--config", "nope", "--skip-accuracy"], "unknown config 'nope'"),                  # row 76
    (["--config", "mnist-classifier", "--skip-accuracy"], "class-conditional GAN config"),  # row 76
    (["--threads", "0", "--skip-accuracy"], "--threads must be at least 1"),
])
def test_bench_mistakes(args, message):
    one_line_error(run("bench", *args), message)


@pytest.mark.parametrize("name, message", [
    ("nope", "no shipped model named 'nope'"),                       # row 79
    ("shapes-text2img", "not one of the 28x28 generators"),         # row 79
])
def test_export_mistakes(name, message, tmp_path):
    one_line_error(run("export", "--out", str(tmp_path), name), message)


def test_export_without_out_outside_a_checkout_refuses(monkeypatch, tmp_path):  # row 80
    monkeypatch.setattr(export, "DEFAULT_OUT", tmp_path / "site-packages" / "book" / "_static" / "explore")
    with pytest.raises(ValueError, match="pass --out FOLDER"):
        export.default_out()
    assert not (tmp_path / "site-packages" / "book").exists()


def test_generate_with_no_labels_is_an_empty_batch():                # rows 67-68
    G = Generator(z_dim=8, n_classes=10, ch=4).eval()
    for labels in (torch.tensor([], dtype=torch.long), []):
        assert G.generate(labels, seed=0).shape == (0, 1, 28, 28)
    with pytest.raises(ValueError, match="integer"):
        G.generate(torch.tensor([True, False]))                     # row 69: bools are not labels


def test_a_tiny_truncation_is_refused_instead_of_looping_for_minutes():  # row 73
    G = Generator(z_dim=8, n_classes=10, ch=4).eval()
    with pytest.raises(ValueError, match="at least 0.05"):
        G.generate(torch.tensor([1]), truncation=1e-5)
    assert G.generate(torch.tensor([1]), truncation=0.05).shape == (1, 1, 28, 28)


def test_a_seed_that_is_not_an_integer_is_named():                   # row 62
    G = Generator(z_dim=8, n_classes=10, ch=4).eval()
    with pytest.raises(ValueError, match="seed must be an integer"):
        G.generate(torch.tensor([1]), seed=1.5)


