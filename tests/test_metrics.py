"""condgan_lib.metrics and the evaluate command: every metric gives the answer known in advance on synthetic data.

FID and KID run through torchmetrics exactly as for images; a stand-in "classifier" whose features are its inputs
lets them see synthetic feature vectors whose distributions (and so whose true distances) we choose.
"""
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from condgan_lib import artifacts, evaluate, metrics
from condgan_lib.data import DataUnavailableError

# torchmetrics warns that KID keeps every feature in memory; for these sample sizes that is the point
pytestmark = pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`:UserWarning")


class Features(nn.Module):
    """A stand-in classifier: ``features(x)`` is ``x`` itself, so the metrics see the vectors we give them."""

    def __init__(self, dim: int):
        super().__init__()
        self.head = nn.Linear(dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x


class PixelLabel(nn.Module):
    """A stand-in classifier that reads its prediction from the first pixel (label / 10)."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1)[:, 0] * 10).round().long()


def ring(n: int, modes: list[int], seed: int, n_modes: int = 8, std: float = 0.05) -> torch.Tensor:
    """``n`` 2-D points spread evenly over the chosen modes of a ring of ``n_modes`` tight Gaussians."""
    gen = torch.Generator().manual_seed(seed)
    which = torch.tensor(modes)[torch.arange(n) % len(modes)]
    angle = 2 * math.pi * which / n_modes
    centres = torch.stack([angle.cos(), angle.sin()], 1)
    return centres + std * torch.randn(n, 2, generator=gen)


def gaussian(n: int, mean, var, seed: int) -> torch.Tensor:
    """``n`` samples of a Gaussian with the given mean and diagonal covariance."""
    gen = torch.Generator().manual_seed(seed)
    mean, var = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(var, dtype=torch.float64)
    return (mean + var.sqrt() * torch.randn(n, len(mean), generator=gen, dtype=torch.float64)).float()


def fid_from_statistics(x: torch.Tensor, y: torch.Tensor) -> float:
    """The Frechet distance between the Gaussians fitted to ``x`` and ``y``, computed here independently."""
    x, y = x.double(), y.double()
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = torch.cov(x.T), torch.cov(y.T)
    trace_sqrt = torch.linalg.eigvals(cov_x @ cov_y).sqrt().real.sum()   # Tr((S_x S_y)^{1/2})
    return ((mu_x - mu_y).pow(2).sum() + cov_x.trace() + cov_y.trace() - 2 * trace_sqrt).item()


# ------------------------------------------------------------------------------------------------------------ FID

def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian(2000, [0.0] * 6, [1.0, 2.0, 0.5, 1.0, 3.0, 1.0], seed=0)
    assert abs(metrics.frechet_distance(Features(6), x, x)) < 1e-3


def test_fid_equals_the_formula_on_the_sample_statistics():
    x = gaussian(3000, [0.0, 1.0, 0.0, 2.0], [1.0, 2.0, 0.5, 1.0], seed=1)
    y = gaussian(3000, [1.0, 1.0, -1.0, 2.0], [4.0, 1.0, 0.5, 0.25], seed=2)
    fid = metrics.frechet_distance(Features(4), x, y)
    assert fid == pytest.approx(fid_from_statistics(x, y), rel=1e-4)


def test_fid_approaches_the_closed_form_for_two_diagonal_gaussians():
    # ||mu_a - mu_b||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2 for diagonal covariances a and b
    mu_a, mu_b = torch.tensor([0.0, 1.0, 0.0, 2.0]), torch.tensor([1.0, 1.0, -1.0, 2.0])
    var_a, var_b = torch.tensor([1.0, 2.0, 0.5, 1.0]), torch.tensor([4.0, 1.0, 0.5, 0.25])
    exact = ((mu_a - mu_b) ** 2).sum() + ((var_a.sqrt() - var_b.sqrt()) ** 2).sum()
    fid = metrics.frechet_distance(Features(4), gaussian(50_000, mu_a, var_a, 3), gaussian(50_000, mu_b, var_b, 4))
    assert fid == pytest.approx(exact.item(), rel=0.02)


def test_fid_grows_with_the_distance_between_means():
    x = gaussian(2000, [0.0, 0.0], [1.0, 1.0], seed=5)
    fids = [metrics.frechet_distance(Features(2), x, gaussian(2000, [shift, 0.0], [1.0, 1.0], seed=6))
            for shift in (0.0, 1.0, 2.0)]
    assert fids[0] < 0.05 and fids == sorted(fids)
    assert fids[2] == pytest.approx(4.0, abs=0.2)


# ------------------------------------------------------------------------------------------------------------ KID

def test_kid_is_about_zero_for_one_distribution_and_positive_for_two():
    x = gaussian(1000, [0.0] * 8, [1.0] * 8, seed=7)
    same = gaussian(1000, [0.0] * 8, [1.0] * 8, seed=8)
    other = gaussian(1000, [0.5] * 8, [1.0] * 8, seed=9)
    kid_same = metrics.kernel_distance(Features(8), x, same, subsets=10)
    kid_other = metrics.kernel_distance(Features(8), x, other, subsets=10)
    assert abs(kid_same) < 0.02
    assert kid_other > 0.2 > 10 * abs(kid_same)


def test_kid_is_reproducible_for_a_seed_and_leaves_the_global_rng_alone():
    x, y = gaussian(600, [0.0] * 4, [1.0] * 4, seed=10), gaussian(600, [0.3] * 4, [1.0] * 4, seed=11)
    stand_in = Features(4)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = metrics.kernel_distance(stand_in, x, y, seed=0, subsets=5)
    after = torch.rand(3)
    assert torch.equal(before, after)
    assert metrics.kernel_distance(stand_in, x, y, seed=0, subsets=5) == first


# --------------------------------------------------------------------------------------------- precision / recall

def test_knn_radius_is_the_distance_to_the_kth_other_point():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert metrics.knn_radii(points, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert metrics.knn_radii(points, k=2).tolist() == [3.0, 2.0, 3.0, 6.0]


def test_knn_radius_refuses_a_set_with_k_points_or_fewer():
    with pytest.raises(ValueError, match="more than 3 points"):
        metrics.knn_radii(torch.zeros(3, 2), k=3)


def test_same_distribution_has_high_precision_and_recall():
    precision, recall = metrics.precision_recall(ring(1000, list(range(8)), 0), ring(1000, list(range(8)), 1))
    assert precision > 0.9 and recall > 0.9


def test_fakes_on_half_the_modes_have_full_precision_and_half_recall():
    precision, recall = metrics.precision_recall(ring(1000, list(range(8)), 0), ring(1000, [0, 1, 2, 3], 1))
    assert precision > 0.95
    assert recall == pytest.approx(0.5, abs=0.05)


def test_fakes_off_the_data_have_low_precision_but_keep_recall():
    real = ring(1000, list(range(8)), 0)
    fake = torch.cat([ring(500, list(range(8)), 1), 3 + torch.randn(500, 2, generator=torch.Generator().manual_seed(2))])
    precision, recall = metrics.precision_recall(real, fake)
    assert precision == pytest.approx(0.5, abs=0.06)
    assert recall > 0.8


# ------------------------------------------------------------------------------------------- condition accuracy

def test_condition_accuracy_counts_the_images_classified_as_requested():
    labels = torch.arange(10)
    images = torch.zeros(10, 1, 28, 28)
    images[:, 0, 0, 0] = labels / 10
    assert metrics.condition_accuracy(PixelLabel(), images, labels) == 1.0
    asked = labels.clone()
    asked[:3] = (asked[:3] + 1) % 10          # three images are not what was asked for
    assert metrics.condition_accuracy(PixelLabel(), images, asked) == pytest.approx(0.7)


# --------------------------------------------------------------------------------------- real reference and floor

@pytest.fixture(scope="module")
def mnist_sets():
    try:
        return metrics.reference_sets("mnist", 200)
    except DataUnavailableError as exc:
        pytest.skip(f"MNIST is not available: {exc}")


def test_reference_sets_are_two_disjoint_sets_of_n_images(mnist_sets):
    real, real_labels, other, other_labels = mnist_sets
    assert real.shape == other.shape == (200, 1, 28, 28)
    assert len(real_labels) == len(other_labels) == 200
    assert torch.bincount(real_labels, minlength=10).tolist() == [20] * 10    # both class-balanced, like a generator's
    assert torch.bincount(other_labels, minlength=10).tolist() == [20] * 10
    flat_real, flat_other = real.flatten(1), other.flatten(1)
    shared = (torch.cdist(flat_other, flat_real) == 0).any().item()
    assert not shared, "an image appears in both reference sets"


def test_reference_sets_are_random_draws_over_the_whole_split_and_repeat_with_their_seed(mnist_sets):
    from condgan_lib.data import load_images
    real, real_labels, _, _ = mnist_sets
    test = load_images("mnist", "test")
    idx = metrics.balanced_sample(test.labels, 200, seed=0)
    assert torch.equal(test.images[idx], real)
    assert idx.max() >= 5000 and idx.min() < 5000          # both halves of the MNIST test split, not its first images
    assert torch.equal(metrics.balanced_sample(test.labels, 200, seed=0), idx)
    assert not torch.equal(metrics.balanced_sample(test.labels, 200, seed=1), idx)


@pytest.mark.parametrize("n", [0, 15, -10])
def test_balanced_sample_rejects_a_size_that_is_not_a_multiple_of_ten(n):
    with pytest.raises(ValueError, match="multiple of 10"):
        metrics.balanced_sample(torch.arange(100) % 10, n, seed=0)


def test_balanced_sample_says_which_class_is_too_small():
    labels = torch.cat([torch.zeros(3, dtype=torch.long), torch.arange(1, 10).repeat(10)])
    with pytest.raises(ValueError, match="class 0 has only 3 images"):
        metrics.balanced_sample(labels, 100, seed=0)


def test_the_real_floor_is_below_every_conditional_generator():
    """The floor is the best a generator can do: a real set scores better FID than every shipped generator."""
    from condgan_lib import hub
    if "mnist-classifier" not in hub.list_pretrained():
        pytest.skip("mnist-classifier is not shipped")
    floor = metrics.real_floor("mnist", n=2000)
    fids = {n: e["metrics"]["fid"] for n, e in hub.read_manifest().items()
            if e["config"].get("dataset") == "mnist" and "fid" in e.get("metrics", {})}
    assert fids and all(floor["fid"] < fid for fid in fids.values()), (floor["fid"], fids)


def test_real_floor_reports_every_metric_and_the_sample_size(mnist_sets):
    from condgan_lib import hub
    if "mnist-classifier" not in hub.list_pretrained():
        pytest.skip("mnist-classifier is not shipped")
    floor = metrics.real_floor("mnist", n=200)
    assert set(floor) == {"fid", "kid", "precision", "recall", "condition_accuracy", "min_class_recall", "n"}
    assert floor["n"] == 200
    assert floor["condition_accuracy"] > 0.97          # the classifier is right about real digits
    assert floor["precision"] > 0.7 and floor["recall"] > 0.7


# ---------------------------------------------------------------------------------------------- the evaluate CLI

def test_compare_lists_only_the_metrics_that_moved_beyond_tolerance():
    recorded = {"fid": 10.0, "kid": 1.0, "precision": 0.8, "recall": 0.7, "n": 2000}
    assert evaluate.compare(recorded, dict(recorded)) == []
    moved = {**recorded, "fid": 10.0 + 2 * evaluate.TOLERANCE["fid"], "recall": 0.7 + evaluate.TOLERANCE["recall"] / 2}
    problems = evaluate.compare(recorded, moved)
    assert len(problems) == 1 and problems[0].startswith("fid:")
    assert evaluate.compare(recorded, {k: v for k, v in recorded.items() if k != "kid"})[0].startswith("kid:")


def test_unknown_name_exits_2_and_lists_the_models_it_can_measure(monkeypatch, capsys):
    fake_manifest = {"mnist-classifier": {"kind": "DomainClassifier"}, "gen-a": {"kind": "Generator"},
                     "gen-b": {"kind": "MLPGenerator"}}
    monkeypatch.setattr(evaluate.hub, "read_manifest", lambda *a, **k: fake_manifest)
    assert evaluate.generator_names() == ["gen-a", "gen-b"]               # the judges are not generators
    assert evaluate.measured_names() == ["mnist-classifier", "gen-a", "gen-b"]  # but their accuracy re-measures
    assert evaluate.main(["no-such-gan"]) == 2
    err = capsys.readouterr().err
    assert "'no-such-gan'" in err and "mnist-classifier, gen-a, gen-b" in err


def test_the_command_line_exits_2_for_an_unknown_name():
    result = subprocess.run([sys.executable, "-m", "condgan_lib.evaluate", "no-such-gan"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert "not a shipped model with recorded metrics" in result.stderr
    assert all(name in result.stderr for name in evaluate.generator_names())


def test_record_replaces_only_the_measured_metrics_of_one_entry(tmp_path, monkeypatch):
    from condgan_lib import evaluate, hub
    manifest = hub.read_manifest()
    if not manifest:
        pytest.skip("no manifest shipped")
    (tmp_path / hub.MANIFEST).write_text((hub.CHECKPOINT_DIR / hub.MANIFEST).read_text())
    monkeypatch.setattr(hub, "CHECKPOINT_DIR", tmp_path)
    name = sorted(manifest)[0]
    evaluate.record(name, {"fid": 1.0, "n": 10})
    after = hub.read_manifest(tmp_path)
    # what was measured replaces the recorded value; what only the training run could measure stays as recorded
    assert after[name]["metrics"] == {**manifest[name]["metrics"], "fid": 1.0, "n": 10}
    assert {k: v for k, v in after[name].items() if k != "metrics"} == {
        k: v for k, v in manifest[name].items() if k != "metrics"}
    assert {k: after[k] for k in after if k != name} == {k: manifest[k] for k in manifest if k != name}


# the command that measures each stored record again, by the folder (or file) under condgan_lib/artifacts
REMEASURED_BY = {"dcgan/previous.json": "scripts/dcgan_ablation.py --previous REV",
                 "dcgan/": "scripts/dcgan_ablation.py", "ablation/": "scripts/rerun_history.py PATH",
                 "mnist-projection/": "scripts/rerun_history.py condgan_lib/artifacts/mnist-projection",
                 "lr_rule/": "scripts/lr_rule_check.py", "fast_recipe/": "scripts/fast_recipe_ablation.py",
                 "diffusion/": "scripts/diffusion_sweeps.py --keep"}
JUDGED_KEYS = {"condition_accuracy", "confident_share", "fid", "accuracy"}


def _keys(value) -> set:
    if isinstance(value, dict):
        return set(value).union(*map(_keys, value.values()))
    if isinstance(value, list):
        return set().union(*map(_keys, value))
    return set()


def _judged_records(path, data) -> list[tuple[str, dict]]:
    """(label, record) pairs of a stored file: one per row where a file keeps one record per candidate; a run's
    history.json is named by the manifest_entry.json beside it."""
    if path.parent.name in ("dcgan", "fast_recipe"):
        return [(f" {name}", row) for name, row in data.items()]
    if path.name == "history.json" and (path.parent / "manifest_entry.json").exists():
        return [("", json.loads((path.parent / "manifest_entry.json").read_text()))]
    return [("", data)]


def test_every_stored_measurement_names_the_shipped_judge():
    """Judged numbers stored with the package (condition accuracy, judged shares, FID in the judge's features) name
    the judge that read them; a retrained judge leaves them stale, and this names the records and their command.
    Excluded: text2img/ (read by the probe, tests/test_text2img.py) and gpu/ (a GPU run kept as it was measured)."""
    stale, unnamed = [], []
    for path in sorted(artifacts.ROOT.rglob("*.json")):
        relative = path.relative_to(artifacts.ROOT).as_posix()
        data = json.loads(path.read_text())
        if relative.startswith(("text2img/", "gpu/")) or not _keys(data) & JUDGED_KEYS:
            continue
        for label, record in _judged_records(path, data):
            dataset = record.get("config", {}).get("dataset", "mnist")
            command = next(c for prefix, c in REMEASURED_BY.items() if relative.startswith(prefix))
            if "judge_sha256" not in record:
                unnamed.append(relative + label)
            elif record["judge_sha256"] != metrics.judge_sha256(dataset):
                stale.append(f"{relative}{label} ({command})")
    for path in sorted(artifacts.ROOT.glob("bench_*.txt")):        # the benchmark's time to 98 % condition accuracy
        if "condition accuracy" in path.read_text():
            if "judged by" not in path.read_text():
                unnamed.append(path.name)
            elif f"sha256 {metrics.judge_sha256('mnist')}" not in path.read_text():
                stale.append(f"{path.name} (python -m condgan_lib.bench, its command at the top)")
    assert not unnamed, f"stored judged numbers that do not name their judge (judge_sha256): {unnamed}"
    assert not stale, f"measured by another judge than the shipped one; measure them again: {stale}"


def _fake_run_config(losses: list[tuple], accuracy: float):
    """A stand-in for runs.run_config that 'trains' by writing a history with these losses."""
    def run_config(name, device, out, progress, command, **overrides):
        history = [{"step": st, "d_loss": d, "g_loss": g, "condition_accuracy": accuracy} for st, d, g in losses]
        (Path(out) / "history.json").write_text(json.dumps(history))
        (Path(out) / f"{name}.pt").write_bytes(b"weights")
        entry = {"file": f"{name}.pt", "config": {"name": name, **overrides}, "metrics": {"fid": 1.0},
                 "created": "2026-12-05T00:00:00Z"}
        return SimpleNamespace(entry=entry)
    return run_config


def test_a_stored_run_is_read_again_only_where_its_losses_reproduce(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    import rerun_history
    from condgan_lib.configs import CONFIGS

    config = CONFIGS["mnist-projection"].to_dict() | {"lr_g": 0.001, "retired_field": 1}
    del config["ema_decay"]                      # a field added after the run: its default
    command = rerun_history.training_command(config, 1)
    assert command == ("python -m condgan_lib.train --config mnist-projection --set ema_decay=0.999 --set lr_g=0.001 "
                       "--threads 1 --no-progress")
    path = tmp_path / "run.json"
    stored = {"command": "old", "config": config, "metrics": {"fid": 9.0},
              "history": [{"step": 50, "d_loss": 0.5, "g_loss": 1.0, "condition_accuracy": 0.2}]}
    path.write_text(json.dumps(stored))
    monkeypatch.setattr(rerun_history, "run_config", _fake_run_config([(50, 0.5, 1.0)], 0.3))
    rerun_history.rerun(path, 1)
    record = json.loads(path.read_text())
    assert record["command"] == command and record["history"][0]["condition_accuracy"] == 0.3
    assert record["judge_sha256"] == metrics.judge_sha256("mnist") and record["metrics"] == {"fid": 1.0}

    path.write_text(json.dumps(stored))
    monkeypatch.setattr(rerun_history, "run_config", _fake_run_config([(50, 0.7, 1.0)], 0.3))
    with pytest.raises(SystemExit, match="differs from the stored one"):
        rerun_history.rerun(path, 1)
    assert json.loads(path.read_text()) == stored
    rerun_history.rerun(path, 1, replace=True)
    record = json.loads(path.read_text())
    assert record["history"][0]["d_loss"] == 0.7 and "not reproduced" in record["rerun"]
